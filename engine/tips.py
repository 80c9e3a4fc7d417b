"""The tip ids (T1–T15), each in one line of plain words: for the UI, the docs and doctor
messages. (The advice itself is summarised in the project's TIPS.md; these are our own words.)"""

TIPS: dict[str, str] = {
    "T1": "Data: enough clean, representative examples",
    "T2": "Preprocessing: centre and scale inputs, log(1+x) for wide ranges",
    "T3": "Batch size: around 128 examples per step",
    "T4": "Average the loss over the batch, so the LR does not depend on batch size",
    "T5": "Learning rate: start at a normal size (0.1 for SGD) and shrink it later",
    "T6": "Each update should change a weight matrix by about 1/1000 of its size",
    "T7": "Validate on held-out data; cut the LR when it stops improving",
    "T8": "Initialisation: small random weights, scaled for deep nets",
    "T9": "Clip the gradient norm so one huge step can't wreck the model",
    "T10": "Check hand-written gradients against numerical ones",
    "T11": "Open the LSTM forget gate at the start so memories last",
    "T12": "Augment: invent extra training examples",
    "T13": "Dropout: switch hidden units off at random while training",
    "T14": "Ensemble: average several networks for a reliable gain",
    "T15": "Sensible defaults: tens of epochs, momentum 0.9, a little weight decay",
}
