"""The message catalogue: every code Trainboard's messages use, mapped to its English msgid.

Torch-free and import-free, so the dashboard, ``jobs`` and Babel read it cheaply. A msgid is a
``str.format`` template; its ``{name}`` fields are the message's params (format specs such as
``{lr:.3g}`` belong to the template, so each language formats its numbers the same way). A
param that is itself a message is translated in its turn. ``engine.messages.Message`` builds
messages from these codes; ``app/engine_text.py`` renders them in the reader's language. A
test checks that every code has an entry in both Chinese catalogues.

Codes are stable: the store keeps them, so change a code only together with a migration. A
msgid may be reworded (it is only a default text); its translations then need updating.
"""

from __future__ import annotations


def N_(text: str) -> str:
    """Marks a msgid for Babel's extractor (``pyproject.toml`` lists ``N_`` as a keyword)."""
    return text


CATALOGUE: dict[str, str] = {
    # --- separators and small phrases --------------------------------------------------------
    "sep.list": N_("; "),
    "event.doctor": N_("{finding} ({tip})"),
    "event.preflight_passed": N_("✓ {finding} ({tip})"),
    "event.preflight_failed": N_("✗ {finding} ({tip})"),
    # --- why a run stopped (a summary's stop_reason) -----------------------------------------
    "stop.epochs": N_("all epochs done"),
    "stop.early_stop": N_("early stop"),
    "stop.lr_floor": N_("lr floor"),
    "stop.cancel_requested": N_("cancel requested"),
    "stop.nonfinite_loss": N_("nonfinite loss"),
    "stop.nonfinite_val_loss": N_("nonfinite val loss"),
    # --- timeline events (engine/decide.py, engine/train.py, engine/checkpoint.py) -----------
    "event.lr_cut": N_("validation loss plateaued: LR cut {old:.3g} → {new:.3g} (T7)"),
    "event.plateau_hint": N_(
        "a cut would have helped here: val/loss had not improved for {epochs} epochs "
        "(LR {old:g} → {new:g}, T7)"
    ),
    "event.lr_floor": N_("LR {lr:.3g} fell below the floor {floor:g}: training is done (T7)"),
    "event.early_stop": N_("no improvement in validation loss for {epochs} epochs: stopping (T7)"),
    "event.diverged_clip": N_(
        "the loss became NaN/inf: training diverged. Lower the learning rate (e.g. optim.lr÷10) "
        "or clip gradients (train.clip_norm=5, T9) (T5)"
    ),
    "event.diverged": N_(
        "the loss became NaN/inf: training diverged. Lower the learning rate (e.g. optim.lr÷10) "
        "(T5)"
    ),
    "event.clip_burst": N_("gradient clipped on {clipped} of {steps} steps in epoch {epoch} (T9)"),
    "event.resumed": N_("resumed from the checkpoint after epoch {epoch} (step {step})"),
    "event.best_restored": N_("restored the best weights, from epoch {epoch} (T7)"),
    "event.run_start": N_("training {model} on {rows} rows, validating on {val_rows}{precision}"),
    "event.run_start_members": N_(
        "training {model} ×{members} members on {rows} rows, validating on {val_rows}{precision}"
    ),
    "precision.bf16": N_(" in bf16 (autocast)"),
    "precision.bf16_unavailable": N_(
        " (bf16 autocast needs a CUDA device: training in fp32 on {device})"
    ),
    "event.run_end": N_("finished after {epochs} epochs ({reason})"),
    "event.run_end_best": N_(
        "finished after {epochs} epochs ({reason}); best val {metric} {value:.4g} at epoch {epoch}"
    ),
    "event.run_end_best_test": N_(
        "finished after {epochs} epochs ({reason}); best val {metric} {value:.4g} at epoch "
        "{epoch}; test {metric} {test_value:.4g}"
    ),
    "event.run_end_test": N_(
        "finished after {epochs} epochs ({reason}); test {metric} {test_value:.4g}"
    ),
    "event.test_score": N_(
        "test split ({rows} rows, never used for any choice): {metric} {value:.4g}"
    ),
    "event.test_score_best": N_(
        "test split ({rows} rows, never used for any choice): {metric} {value:.4g} with the best "
        "weights, from epoch {epoch}"
    ),
    "event.stopped": N_("{how} at step {step}{checkpoint}"),
    "how.cancelled": N_("cancelled"),
    "how.released": N_("worker shut down"),
    "how.time_limit": N_("stopped at the run time limit"),
    "checkpoint.saved": N_("; checkpoint saved"),
    "checkpoint.unsaved": N_(
        "; the checkpoint could not be written ({why}), a resume starts {resume}"
    ),
    "event.released": N_("{stopped}; the run goes back to the queue"),
    "resume.after_epoch": N_("after epoch {epoch}"),
    "resume.beginning": N_("from the beginning"),
    "event.checkpoint_failed": N_(
        "could not write the checkpoint after epoch {epoch} ({why}); training goes on, a resume "
        "would start {resume}"
    ),
    "event.model_save_retry": N_(
        "could not write the trained model ({why}); retrying for up to {seconds} s"
    ),
    "error.model_save": N_(
        "could not write the trained model to {path} ({why}) after {retries} retries over "
        "{seconds} s: free disk space on the data directory and queue the run again"
    ),
    "error.oom": N_(
        "out of memory ({error}): lower train.batch_size (now {batch}) or the model size, or use "
        "a device with more memory"
    ),
    "error.checkpoint_resume": N_("checkpoint {path} can't be resumed: {error}"),
    # --- doctor findings (engine/doctor.py) ---------------------------------------------------
    "doctor.init_loss": N_(
        "loss at initialisation is {init_loss:.3f}; expected log({n_classes}) = {expected:.3f}"
    ),
    "doctor.init_loss_regression": N_(
        "loss at initialisation is {init_loss:.3f}; expected about 1.0 (standardized targets)"
    ),
    "doctor.init_loss.fix": N_("the initial weights are too large or too small: try {change}"),
    "doctor.inputs_standardized": N_(
        "inputs after preprocessing: largest |mean| {max_abs_mean:.3f}, largest |std − 1| "
        "{max_std_dev:.3f}"
    ),
    "doctor.inputs_standardized.fix": N_(
        "turn data.standardize on; big offsets make weight updates huge and correlated"
    ),
    "doctor.gradcheck_passed": N_(
        "gradient check passed for every parameter tensor (analytic = numerical gradients, float64)"
    ),
    "doctor.gradcheck_failed": N_("gradient check FAILED for {where}: {error}"),
    "doctor.gradcheck_where": N_("{param} ({layer})"),
    "doctor.gradcheck_layer": N_("{layer}, {kind}"),
    "doctor.gradcheck_input": N_("the gradient with respect to the input"),
    "doctor.gradcheck_builtin": N_("PyTorch built-in"),
    "doctor.gradcheck_custom": N_("custom layer"),
    "doctor.gradcheck.fix_custom": N_(
        "custom code in {modules} (your code) computes a gradient wrongly: check its backward / "
        "autograd.Function"
    ),
    "doctor.gradcheck.fix_builtin": N_(
        "every layer is a PyTorch built-in, whose gradients PyTorch tests; this is more likely a "
        "point where the function has a kink (a ReLU at exactly 0, a max-pool tie) than a wrong "
        "gradient"
    ),
    "doctor.batch_size_ok": N_(
        "batch size {batch_size} on {train_rows} training rows: {batches} batches per epoch"
    ),
    "doctor.batch_size": N_("batch size {batch_size}: {problems}"),
    "doctor.batch_size.few_batch": N_(
        "a batch of {batch_size} is over 1/{min_batches} of the {train_rows} training rows "
        "({batches} batch per epoch): too few updates, and batches this large relative to the "
        "data tend to overfit"
    ),
    "doctor.batch_size.few_batches": N_(
        "a batch of {batch_size} is over 1/{min_batches} of the {train_rows} training rows "
        "({batches} batches per epoch): too few updates, and batches this large relative to the "
        "data tend to overfit"
    ),
    "doctor.batch_size.huge": N_(
        "a batch of {batch_size} is very large: it can be inefficient and overfit"
    ),
    "doctor.batch_size.not_8": N_(
        "{batch_size} is not a multiple of 8, which accelerators handle best"
    ),
    "doctor.try": N_("try {change}"),
    "doctor.activation_scale_few": N_("activation scale: too few layers to compare"),
    "doctor.activation_scale": N_(
        "activation spread changes ×{ratio:.3g} from the first to the last hidden layer"
    ),
    "doctor.activation_scale.fix": N_(
        "the signal vanishes or explodes through depth: try {change}"
    ),
    "doctor.activation_scale.fix_init": N_(
        "the signal vanishes or explodes through depth: try another init (T8)"
    ),
    "doctor.overfit_one_batch": N_("memorising one batch of 16: {detail}"),
    "doctor.overfit_one_batch_failed": N_(
        "memorising one batch of 16: {detail} — it should reach 100% / near-zero loss"
    ),
    "doctor.overfit_one_batch.accuracy": N_("accuracy {accuracy:.0%}"),
    "doctor.overfit_one_batch.loss": N_("loss {first_loss:.3g} → {final_loss:.3g}"),
    "doctor.overfit_one_batch.fix": N_(
        "check the labels, the loss and the gradients; a model that can't memorise 16 examples "
        "won't learn the dataset"
    ),
    "doctor.ratio_low": N_(
        "update/weight ratio has stayed below {low:g} (now {ratio:.2g}): learning is very slow"
    ),
    "doctor.ratio_low.fix": N_("raise the learning rate ×3 ({change})"),
    "doctor.ratio_low.fix_max": N_(
        "the learning rate is already at its largest allowed value (10): check the inputs' scale "
        "(T2) and the init (T8)"
    ),
    "doctor.ratio_high": N_(
        "update/weight ratio has stayed above {high:g} (now {ratio:.2g}): learning is unstable"
    ),
    "doctor.ratio_high.fix": N_("lower the learning rate ÷3 ({change}) or clip gradients (T9)"),
    "doctor.exploding_gradient": N_(
        "gradient norm jumped to {norm:.3g}, {times:.0f}× its recent median {median:.3g}"
    ),
    "doctor.exploding_gradient.fix": N_("clip the gradient norm (train.clip_norm=5)"),
    "doctor.exploding_gradient.fix_lr": N_(
        "gradients are already clipped at {clip_norm:g}: lower the learning rate ÷3 ({change})"
    ),
    "doctor.range_test_held": N_(
        "the range test's LR {lr:.3g} trained up to the best epoch ({best}) without a plateau "
        "cut: it suited this run"
    ),
    "doctor.range_test_cut": N_(
        "the range test's LR {lr:.3g} held for {held} epochs before the first plateau cut; the "
        "best epoch ({best}) trained at {best_lr:.3g}, where the cuts had brought it by then"
    ),
    "doctor.plateau": N_(
        "validation loss has not improved for {epochs} epochs: a scheduled run would cut the LR "
        "here"
    ),
    "doctor.plateau.fix": N_(
        "turn schedule.enabled on so the LR is multiplied by {factor:g} on plateaus"
    ),
    "doctor.overfitting": N_(
        "validation loss rose {window} epochs in a row while training loss fell: the model is "
        "memorising"
    ),
    "doctor.overfitting.fix": N_(
        "try {change}; more data helps most; early stopping keeps the best weights"
    ),
    "doctor.overfitting.fix_data": N_(
        "more data helps most; early stopping keeps the best weights"
    ),
    "doctor.loss_rising": N_(
        "epoch training loss {loss:.3g} is over 3× the first epoch's {initial:.3g}"
    ),
    "doctor.loss_rising.fix": N_("lower the learning rate ÷10 ({change})"),
    "doctor.class_never_predicted": N_(
        "the model never predicts class {name!r} (0 of its {rows} validation rows): accuracy "
        "hides it; look at balanced accuracy"
    ),
    "doctor.class_never_predicted.fix": N_("weigh the classes (train.class_weight=auto)"),
    "doctor.class_never_predicted.fix_data": N_(
        "add examples of that class (T1); the loss already weighs the classes"
    ),
    "doctor.learned_nothing": N_(
        "with its best weights the model scores {accuracy:.1%} on the validation rows, no better "
        "than always answering the largest class ({share:.1%}): it learned nothing that carries "
        "over to new rows"
    ),
    "doctor.learned_nothing.fix": N_(
        "check that each row's label belongs to it (shuffled or misaligned labels look like "
        "this) and that the columns can predict the target at all; compare with the reference "
        "scores (T1)"
    ),
    # --- the dataset report (engine/data/report.py, tabular.py) -------------------------------
    "report.small": N_("only {rows} rows: small for a neural network; expect to overfit (T1)."),
    "report.missing": N_("column {column} has {count} missing values ({share}); {fill} (T1)."),
    "report.missing.text": N_("an empty text cell matches no category"),
    "report.missing.number": N_(
        "each is filled with the median of that column over the training rows (0 if the column "
        "has no value there)"
    ),
    "report.duplicates": N_(
        "{count} duplicate rows ({share}): they count twice in training and can leak into "
        "validation (T1)."
    ),
    "report.conflicting": N_(
        "{count} groups of identical inputs have different targets: some labels may be wrong (T1)."
    ),
    "report.constant": N_(
        "column {column} has the same value in every row: it carries no information (T1)."
    ),
    # stored by reports from before presets followed the data (the upload's report no longer
    # judges a fixed 128): kept so those rows still read in every language
    "report.few_batches_default": N_(
        "about {rows} training rows make fewer than {batches} batches at the default batch size "
        "{batch}: a smaller batch (e.g. 32) gives more updates per epoch (T3)."
    ),
    "report.few_batches": N_(
        "about {rows} training rows make fewer than {batches} batches at batch size {batch}: a "
        "smaller batch (e.g. 32) gives more updates per epoch (T3)."
    ),
    "report.log1p": N_(
        "column {column} spans {orders:.0f} orders of magnitude: log(1 + x) will be applied "
        "before standardizing, so its large values don't dominate (T2)."
    ),
    "report.log1p_off": N_(
        "column {column} spans {orders:.0f} orders of magnitude and log(1 + x) is off "
        "(data.log1p=off): its large values can dominate the others; set data.log1p=auto (T2)."
    ),
    "report.single_class": N_("the target has a single class: there is nothing to learn (T1)."),
    "report.few_per_class": N_(
        "only {rows} rows for {classes} classes (under {per_class} per class): the network may "
        "not learn well; more examples would help most (T1)."
    ),
    "report.rare_class": N_(
        "class '{name}' has {share} of rows ({count}), much less than the largest class: the "
        "model may mostly ignore it (T1)."
    ),
    "report.no_target_rows": N_(
        "{count} row(s) have no value in the target column {column!r} and were left out."
    ),
    "target.named": N_("its name, {name!r}, says it is the label"),
    "target.last": N_("the last column (no column is named like a label)"),
    "target.first": N_("the first column: the last one, {name!r}, looks like {kind}"),
    "target.not_unfit": N_(
        "the last column that is not an ID, a date or free text ({name!r} is {kind})"
    ),
    "target.classes": N_("{count} distinct values: a classification target"),
    "target.quantity": N_("a quantity: a regression target"),
    "unfit.id_or_date_name": N_("named like an ID or a date"),
    "unfit.date": N_("a date"),
    "unfit.text_or_id": N_("free text or an ID (almost every row differs)"),
    "unfit.running_number": N_("a running number (an ID)"),
    # --- data errors (engine/data/*) -----------------------------------------------------------
    "data.too_few_rows": N_(
        "{where}: only {rows} rows. Trainboard needs at least {min_rows}, so that the validation "
        "and test splits hold more than a row or two (T1). Add rows."
    ),
    "data.single_row_classes": N_(
        "{where}: {count} class(es) have a single row ({classes}). Every class needs at least "
        "{min_rows} rows, or it can't be both learned and checked (T1). Add examples of those "
        "classes or remove their rows."
    ),
    "data.split_missing": N_(
        "{where}: the split column has no '{name}' rows; it needs train, val and test rows (or "
        "remove the column and let Trainboard split the rows)."
    ),
    "data.split_values": N_(
        "{where}: the split column must say train, val or test in every row; it also holds "
        "{values} ({count} rows). Fix those cells, or rename the column if it is a feature."
    ),
    "data.no_train_rows": N_(
        "with {rows} rows, val_fraction={val_fraction} and test_fraction={test_fraction} leave "
        "no training rows; lower the fractions or add rows."
    ),
    "data.bad_fraction": N_("{name} must be between 0 and 1 (exclusive), not {value}"),
    "data.bad_log1p": N_("log1p must be 'auto' or 'off', not {value!r}"),
    "data.bad_modality": N_("modality must be one of {allowed}, not {value!r}"),
    "data.bad_max_rows": N_("max_rows must be at least 2, not {value}"),
    "data.bad_task": N_(
        "task must be one of 'auto', 'classification', 'regression', not {value!r}"
    ),
    "data.one_class": N_(
        "{where}: the target has a single class; classification needs at least two."
    ),
    "data.no_target_column": N_(
        "{where}: there is no target column {target!r}. Columns: {columns}{more}. Pick one of "
        "these as the target."
    ),
    "data.more_columns": N_(" (and {count} more)"),
    "data.target_infinite": N_(
        "{where}: target column {name!r} holds infinite values; fix or remove those rows."
    ),
    "data.target_constant": N_(
        "{where}: target column {name!r} has the same value ({value}) in every row, so there is "
        "nothing to learn. Pick another target column or add rows with other values."
    ),
    "data.target_text_regression": N_(
        "{where}: target column {name!r} holds text (e.g. {value}), so it can't be a regression "
        "target. Use task='classification' or pick a numeric target column."
    ),
    "data.too_many_classes": N_(
        "{where}: target column {name!r} has {count} distinct values, too many for "
        "classification (at most {limit}). Use task='regression' or another column."
    ),
    "data.mostly_numbers": N_(
        "{where}: column {column!r} is mostly numbers but holds text values ({values}). If these "
        "mark missing values, leave those cells empty instead."
    ),
    "data.too_many_categories": N_(
        "{where}: column {column!r} is text with {count} distinct values, more than the {limit} "
        "Trainboard turns into one-hot features. Drop the column or group its values into fewer "
        "categories."
    ),
    "data.infinite": N_(
        "{where}: column {column!r} holds infinite values ({count} cells). Replace them with real "
        "numbers or leave the cells empty."
    ),
    "data.too_large": N_(
        "{where}: column {column!r} holds values too large for 32-bit floats; rescale it."
    ),
    "data.no_features": N_("{where}: there are no feature columns besides the target."),
    "data.no_rows": N_("{where}: the table has no rows."),
    "data.one_column": N_(
        "{where}: the table has {count} column; it needs at least one feature column and a "
        "target column. (For a text file, check the separator.)"
    ),
    "data.target_empty": N_("{where}: the target column {name!r} is empty in every row."),
    # --- what each column is (engine/data/columns.py) -------------------------------------------
    "kind.number": N_("number"),
    "kind.boolean": N_("yes/no"),
    "kind.category": N_("category"),
    "kind.date": N_("date"),
    "kind.id": N_("ID (ignored)"),
    "kind.text": N_("free text (ignored)"),
    "kind.ignore": N_("ignored"),
    "column.empty": N_("every cell is empty, so it carries nothing; ignored"),
    "column.boolean": N_("true/false values, used as 1/0"),
    "column.yes_no": N_("yes/no answers, used as 1/0"),
    "column.number": N_("numbers, standardized before training (T2)"),
    "column.number_text": N_(
        "numbers written as text (thousands separators, a currency or percent sign), read as "
        "numbers (T2)"
    ),
    "column.number_markers": N_(
        "numbers; the cells {values} are no numbers and are treated as missing (T2)"
    ),
    "column.date": N_(
        "dates: turned into the year, the days since 1970, and the month, weekday and day of "
        "the year as cycles (December sits next to January)"
    ),
    "column.category": N_("text with {count} values, one-hot encoded (one 0/1 feature per value)"),
    "column.id_running": N_(
        "a running number or an ID (unique per row): it tells rows apart and says nothing "
        "about the target, so it is ignored"
    ),
    "column.id_unique": N_(
        "a different value in every row (an ID or a name): it tells rows apart and says nothing "
        "about the target, so it is ignored"
    ),
    "column.text": N_(
        "free text with {count} distinct values, more than the {limit} that can be one-hot "
        "encoded: ignored (make it a category with fewer values to use it)"
    ),
    "column.ignored_by_user": N_("ignored, as you chose"),
    "column.number_by_user": N_("numbers, as you chose (T2)"),
    "column.date_by_user": N_("dates, as you chose"),
    "column.boolean_by_user": N_("yes/no, as you chose"),
    "column.category_by_user": N_("a category, as you chose (one-hot encoded)"),
    "data.only_ignored": N_(
        "{where}: every feature column was ignored ({columns}: IDs, free text or empty). Set a "
        "kind for one of them (data.columns, or the column table on the Datasets page) to use it."
    ),
    "data.column_unknown": N_(
        "{where}: data.columns names {column!r}, which is not a feature column. Columns: {columns}."
    ),
    "data.column_kind": N_(
        "{where}: column {column!r} can't be made {kind!r}; a column's kind is one of: {kinds}."
    ),
    "data.column_not_numbers": N_(
        "{where}: column {column!r} can't be read as numbers: most of its cells are text. Make "
        "it a category, or ignore it."
    ),
    "data.column_not_dates": N_(
        "{where}: column {column!r} can't be read as dates. Make it a category, or ignore it."
    ),
    "data.column_not_boolean": N_(
        "{where}: column {column!r} has more than two values, so it can't be yes/no. Make it a "
        "category, or ignore it."
    ),
    # --- reading files (engine/data/loaders.py, builtins.py) -----------------------------------
    "report.no_target": N_("{count} row(s) have no target and were left out."),
    "data.file_type": N_(
        "{where}: unsupported file type {ext!r}. Supported: {allowed}, or builtin:NAME."
    ),
    "data.not_found": N_("{where}: file not found."),
    "data.empty_file": N_("{where}: the file is empty."),
    "data.binary": N_("{where}: this is a binary file, not a text table; is the extension wrong?"),
    "data.not_utf8_at": N_(
        "{where}: the text is not UTF-8 (byte {byte} can't be decoded); save the file as UTF-8 "
        "and upload it again."
    ),
    "data.not_utf8": N_(
        "{where}: the text is not UTF-8; save the file as UTF-8 and upload it again."
    ),
    "data.too_many_columns": N_(
        "{where}: {count} columns is more than the {limit} Trainboard accepts."
    ),
    "data.header_too_wide": N_(
        "{where}: the header has more than the {limit} columns Trainboard accepts."
    ),
    "data.nested": N_(
        "{where}: column {column!r} holds nested objects or lists; Trainboard reads one number "
        "or text per cell. Flatten it and upload again."
    ),
    "data.bad_parquet": N_("{where}: not a valid Parquet file ({error})."),
    "data.no_header": N_("{where}: the file is empty (no header row)."),
    "data.malformed": N_(
        "{where}: malformed table: {detail}. Check quotes and that every row has the same number "
        "of fields."
    ),
    "data.unreadable_table": N_("{where}: can't be read as a table: {error}"),
    "data.npz_not_zip": N_("{where}: can't be read as an .npz: it is not a zip of .npy arrays."),
    "data.npz_many_arrays": N_("{where}: {count} arrays; an .npz for training holds a few."),
    "data.npz_not_npy": N_("{where}: {name!r} is not a plain .npy array."),
    "data.npz_too_big": N_(
        "{where}: the arrays hold {mb:,.0f} MB, more than the {limit} MB limit."
    ),
    "data.npz_images_too_big": N_(
        "{where}: {name!r} has {height}×{width} images, more than the {limit:,} pixels allowed "
        "per image."
    ),
    "data.npz_unreadable": N_(
        "{where}: can't be read as an .npz of plain number arrays: it is not a NumPy .npz file "
        "(was another file renamed?), or it holds Python objects, which Trainboard never loads. "
        "Save it with numpy.savez from plain arrays."
    ),
    "data.npz_no_array": N_("{where}: no array named {name!r}; arrays: {arrays}."),
    "data.npz_two_arrays": N_("{where}: needs two arrays, features 'x' and target 'y'."),
    "data.npz_not_numeric": N_("{where}: array {name!r} must be numeric, not {dtype}."),
    "data.npz_target_shape": N_(
        "{where}: target {name!r} must be one value per row: shape ({rows},), got {shape}."
    ),
    "data.npz_no_rows": N_("{where}: the arrays have no rows."),
    "data.npz_dims": N_("{where}: {name!r} has {dims} dimensions; expected 2, 3 or 4."),
    "data.npz_infinite": N_("{where}: array {name!r} holds infinite values; replace them."),
    "data.npz_target_missing": N_("{where}: target {name!r} is missing in every row."),
    "data.zip_unsafe_path": N_("{where}: unsafe path {name!r} in the archive (absolute or '..')."),
    "data.zip_symlink": N_(
        "{where}: {name!r} is a symbolic link; archives may hold only plain files."
    ),
    "data.zip_special": N_(
        "{where}: {name!r} is a special file (device, FIFO or socket); archives may hold only "
        "plain files."
    ),
    "data.zip_bomb_entry": N_(
        "{where}: {name!r} expands {ratio:.0f}× (limit {limit}×); that is how zip bombs look, so "
        "it was refused."
    ),
    "data.zip_bomb": N_(
        "{where}: the archive expands {ratio:.0f}× when unpacked (limit {limit}×); that is how "
        "zip bombs look, so it was refused."
    ),
    "data.zip_entry_lies": N_(
        "{where}: {name!r} is larger than its header says; the archive is corrupt or hostile."
    ),
    "data.needs_pillow": N_("reading image zips needs Pillow: pip install pillow"),
    "data.bad_zip": N_("{where}: not a valid zip archive."),
    "data.zip_many": N_("{where}: the archive holds {count} entries, more than {limit}."),
    "data.zip_too_big": N_(
        "{where}: the archive unpacks to {mb:.0f} MB, more than the {limit} MB limit."
    ),
    "data.zip_empty": N_("{where}: the archive holds no files."),
    "data.zip_no_folder": N_(
        "{where}: {name!r} is not inside a class folder; the archive must hold one folder per "
        "class (cat/1.png, dog/2.png)."
    ),
    "data.zip_not_image": N_(
        "{where}: {name!r} is not an image (allowed: {allowed}); remove it from the archive."
    ),
    "data.image_too_big": N_(
        "{where}: {name!r} is {width}×{height} pixels, more than the {limit:,} allowed per image."
    ),
    "data.image_undecodable": N_("{where}: {name!r} can't be decoded as an image."),
    "data.adding_length": N_("{where}: the sequence length must be between 2 and {limit}."),
    "data.adding_regression": N_("{where} is a regression task; use task='regression' or 'auto'."),
    "data.unknown_builtin": N_(
        "unknown built-in dataset {name!r}. Available: {known} (and builtin:adding-T)."
    ),
    # --- config errors (engine/config.py) ------------------------------------------------------
    "config.field": N_("{field}: {problem}"),
    "config.many": N_("{problems}"),
    "config.got": N_("{problem} (got {value!r})"),
    "config.unknown_setting": N_("unknown setting"),
    "config.unknown_setting_allowed": N_("unknown setting; allowed here: {allowed}"),
    "config.unknown_section": N_("unknown section; sections are: {sections}"),
    "config.no_preset": N_("no preset named {name!r}; choose one of: {names}"),
    "config.override_syntax": N_("write it as field=value, e.g. optim.lr=0.05"),
    "config.override": N_("override {text!r}: {problem}"),
    "config.preset_file": N_("preset file {file}: missing key {key}"),
    "config.greater_than": N_("Input should be greater than {gt}"),
    "config.greater_equal": N_("Input should be greater than or equal to {ge}"),
    "config.less_than": N_("Input should be less than {lt}"),
    "config.less_equal": N_("Input should be less than or equal to {le}"),
    "config.pydantic": N_("{text}"),
    "config.ensemble_sequence": N_(
        "ensemble.members: ensembles support mlp and cnn models; for sequences use "
        "model.kind=mlp or ensemble.members=1"
    ),
    "config.two_classes": N_("data: a classification task needs at least 2 classes"),
    "config.model_kind": N_(
        "model.kind: {kind!r} does not fit {modality} data; use one of {allowed} or 'auto'"
    ),
    # --- the auto preset's reasons (engine/auto.py) ---------------------------------------------
    "auto.batch_max": N_(
        "batch {batch}: {rows} training rows give {steps} updates per epoch at the advice's "
        "~128, plenty; bigger batches would generalise worse (T3)."
    ),
    "auto.batch": N_(
        "batch {batch}: {rows} training rows would make only {count} batch(es) of 128; {batch} "
        "(a multiple of 8) gives {steps} updates per epoch (T3)."
    ),
    "auto.epochs": N_(
        "up to {epochs} epochs, about {updates:,} updates in all; the LR schedule and early "
        "stopping usually end the run sooner (T15)."
    ),
    "auto.class_weight": N_(
        "the smallest class has {share:.0%} of the largest one's rows: each class's loss is "
        "weighted so a rare class counts as much as a common one, and the best epoch is the one "
        "with the best balanced accuracy (train.class_weight=off turns both off) (T1)."
    ),
    "auto.class_weight_sqrt": N_(
        "the smallest class has {share:.0%} of the largest one's rows: each class's loss is "
        "weighted by the square root of what would make a rare class count as much as a common "
        "one, so rare classes still get predicted without giving up much overall accuracy, and "
        "the best epoch is the one with the best balanced accuracy (train.class_weight=auto for "
        "full weights, off for none) (T1)."
    ),
    "auto.embedding": N_(
        "numeric embeddings: each input column also enters the net as sines and cosines of a "
        "few fixed random frequencies, through one small layer shared by all columns, so the "
        "net can draw the sharp cut-offs that trees draw (PLR-lite, from the TabM and numeric "
        "embedding papers) (T2)."
    ),
    "auto.lr_base": N_(
        "LR 0.1, the advice's good first LR for SGD with momentum at batch 128 (T5)."
    ),
    "auto.lr": N_(
        "LR {lr:g}: 0.1 suits batch 128; at batch {batch} the gradients are noisier, so the LR "
        "shrinks with the batch (0.1 × {batch}/128) and training stays stable (T5)."
    ),
    "auto.decay_gentle": N_(
        "weight decay {decay:g}: {rows:,} training rows regularise the net by themselves; a "
        "gentle pull towards small weights is enough (T15)."
    ),
    "auto.ensemble": N_(
        "an ensemble of {members} nets from different seeds, their predictions averaged: on "
        "{rows} training rows one net's score depends a lot on its luck, and a member costs only "
        "seconds here (T14)."
    ),
    "auto.dropout": N_(
        "dropout 0.2: with {rows} training rows a net of this size can memorise them; switching "
        "off a fifth of the units at random keeps it from relying on any one (T13)."
    ),
    "auto.dropout_embedded": N_(
        "dropout 0.3: with {rows} training rows, and every column embedded into several inputs, "
        "a net of this size can memorise them; switching off three units in ten at random keeps "
        "it from relying on any one (T13)."
    ),
    "auto.decay_firm": N_(
        "weight decay {decay:g}: a firmer pull towards small weights on {rows} rows, where "
        "overfitting is the main risk (T15)."
    ),
    "auto.small_net": N_(
        "one hidden layer of {units} units (for an MLP): {rows} rows can't pin down the "
        "{weights:,} weights of two layers of 256, so a smaller net overfits less (T13)."
    ),
    "auto.patience_small": N_(
        "the LR is cut after {epochs} epochs without a better validation loss (small data is "
        "noisier, so it waits one epoch more)."
    ),
    "auto.patience": N_("the LR is cut after {epochs} epochs without a better validation loss."),
    "auto.halve": N_("each cut halves the LR, so it reaches the floor after about 10 cuts (T7)."),
    "auto.divide_5": N_(
        "each cut divides the LR by 5: with up to {epochs} epochs, halving would not reach the "
        "floor in time (T7)."
    ),
    "auto.early_stop": N_(
        "stop after {epochs} epochs without improvement, counted from the last LR cut, so the "
        "schedule gets to make its cuts first (T7)."
    ),
    "auto.ratio_every": N_(
        "the update/weight ratio is measured every {steps} steps, so even a run that stops early "
        "gets enough readings for the T6 check."
    ),
    "auto.adam": N_(
        "Adam for a recurrent net: it adapts the step size per weight, which suits LSTMs better "
        "than one LR for all (T5)."
    ),
    "auto.adam_lr": N_(
        "LR 0.003, Adam's usual scale (about 1e-3) started a little bolder; the plateau rule cuts "
        "it (T5)."
    ),
    "auto.adam_floor": N_(
        "Adam's LR starts small, so the floor where the run ends is lower too (T7)."
    ),
    "auto.forget_gate": N_(
        "the LSTM's forget gate starts mostly open (bias 2), so long-range signals survive the "
        "first updates (T11)."
    ),
    "auto.clip": N_(
        "gradients longer than 5 are scaled back to 5: recurrent nets sometimes produce enormous "
        "ones, and one bad step must not undo training (T9)."
    ),
    # --- the learning-rate range test (engine/lr_find.py; issue 23) ---------------------------
    "lr_find.suggest": N_(
        "suggested LR {lr:.3g}: the middle of valley {valley:.3g}, steepest descent "
        "{steepest:.3g} and minimum÷10 {minimum:.3g}, over {orders} data orders (T5)"
    ),
    "lr_find.unreliable": N_("no reliable suggestion: {reasons}"),
    "lr_find.never_fell": N_(
        "the loss never fell (at best {best:.3g}, from {start:.3g}), so the curve shows no LR at "
        "which the model learns (T5)"
    ),
    "lr_find.never_diverged": N_(
        "the loss had not diverged by LR {end:g}: the curve has no right edge, so where it bottoms "
        "out says nothing about where training becomes unstable (T5)"
    ),
    "lr_find.rules_disagree": N_(
        "the three rules disagree by ×{ratio:.1f}, more than ×{limit:g}: valley {valley:.3g}, "
        "steepest descent {steepest:.3g}, minimum÷10 {minimum:.3g} (T5)"
    ),
    "lr_find.orders_disagree": N_(
        "the {orders} data orders disagree by ×{ratio:.1f}, more than ×{limit:g}: from {lo:.3g} "
        "to {hi:.3g} (T5)"
    ),
    "lr_find.too_short": N_(
        "the loss diverged after {steps} steps, at LR {lr:.3g}: too few points to read a "
        "suggestion from (T5)"
    ),
    "lr_find.bounds": N_("the range test's {name} must be between {lo:g} and {hi:g}"),
    "lr_find.lr_order": N_("the range test's start LR {start:g} must be below its end LR {end:g}"),
    # --- the team server's guards and the run's life (jobs/; issue 18) --------------------------
    "what.name": N_("name"),
    "what.run_name": N_("run name"),
    "what.file_name": N_("file name"),
    "guard.too_long": N_(
        "the {what} is {length:,} characters long; at most {limit} are allowed, so nothing was "
        "stored. Shorten it."
    ),
    "guard.data_locked": N_(
        "the data comes from the dataset chosen above; pick or upload another dataset there"
    ),
    "guard.set_by_preset": N_("set by the preset you pick above, not by a setting"),
    "guard.whole_section": N_(
        "a whole section can't be set at once; set one field per line, e.g. {field}=VALUE"
    ),
    "guard.unknown_setting": N_(
        "unknown setting; the settings a run may change are listed in docs/presets.md"
    ),
    "guard.not_registered": N_(
        "{source} is not a registered dataset; add it first (Datasets page, or `trainboard "
        "datasets add FILE`, which checks it as an upload is checked)"
    ),
    "guard.dataset_gone": N_("dataset {id} no longer exists; pick another dataset"),
    "guard.run_dataset_gone": N_(
        "this run's dataset is no longer registered, so it was not read; queue the run again on "
        "a dataset from the Datasets page"
    ),
    "guard.other_file": N_(
        "this run's settings name another file or target than its dataset {name!r}, so nothing "
        "was read; queue it again from the New run page"
    ),
    "guard.not_sample": N_("{source}: not a bundled sample, so nothing was read."),
    "guard.not_sample_choose": N_("{source}: not a bundled sample; choose one of: {names}."),
    "guard.outside": N_(
        "{name}: the dataset's file is not in the data directory, so it was not read; add the "
        "file again from the Datasets page"
    ),
    "guard.unreadable": N_("{name}: the dataset's file can't be read ({why})."),
    "guard.changed": N_(
        "{name}: the file changed after it was checked (its content hash differs), so it was not "
        "loaded; upload it again"
    ),
    "guard.time_limit": N_(
        "stopped at the {hours:g} h limit per run (TRAINBOARD_MAX_RUN_HOURS on the server); its "
        "checkpoint is kept: Resume it to go on"
    ),
    "run.delete_active": N_(
        "run {id} is {status}; cancel it first (a run can be deleted once it is over)"
    ),
    "resume.not_over": N_(
        "run {id} is {status}; only a failed, cancelled or lost run can be resumed"
    ),
    "resume.no_checkpoint": N_(
        "run {id} has no checkpoint (it stopped before its first epoch ended); queue it again "
        "instead"
    ),
    "resume.dataset_deleted": N_("run {id}'s dataset file was deleted; it can't go on"),
    "resume.after_epoch_of": N_("run {id} continues after epoch {epoch}"),
    "resume.from_checkpoint": N_("run {id} continues from its checkpoint"),
    "resume.fields": N_("a resume can change only {fields}"),
    "resume.epochs": N_("the checkpoint already holds {epochs} epochs; ask for more than that"),
    # --- the server's limits on one run (jobs/runs/quotas.py) ------------------------------------------
    "quota.what.gpu": N_("the largest GPU of the workers"),
    "quota.what.server": N_("this server's memory"),
    "quota.seed": N_("a seed is a whole number from 0 to {limit:,} (2³²−1)"),
    "quota.epochs": N_(
        "at most {limit:,} epochs on this server (TRAINBOARD_MAX_EPOCHS); {asked:,} asked"
    ),
    "quota.members": N_(
        "at most {limit} ensemble members on this server (TRAINBOARD_MAX_ENSEMBLE); {asked} asked"
    ),
    "quota.params": N_(
        "this model has about {params:.3g} parameters, more than the {limit:,} allowed on this "
        "server (TRAINBOARD_MAX_PARAMS); use fewer or narrower layers"
    ),
    "quota.params_members": N_(
        "this model has about {params:.3g} parameters ({members} members), more than the "
        "{limit:,} allowed on this server (TRAINBOARD_MAX_PARAMS); use fewer or narrower layers"
    ),
    "quota.memory": N_(
        "training would need about {need}, more than the {limit} one run may use here "
        "(TRAINBOARD_MAX_RUN_MEMORY_GB); use a smaller model, batch or data.max_rows"
    ),
    "quota.device": N_(
        "training would need about {need}, more than {what} ({device}); use a smaller model, "
        "batch or data.max_rows"
    ),
    # --- the upload check's refusals (jobs/datasets/check.py) ------------------------------------
    "upload.what.archive": N_("the archive unpacks"),
    "upload.what.arrays": N_("the arrays unpack"),
    "upload.what.workbook": N_("the workbook unpacks"),
    "upload.what.row_groups": N_("the row groups unpack"),
    "upload.what.column_n": N_("column {n}"),
    "upload.what.column": N_("column {name!r}…"),
    "upload.what.array": N_("array {name!r}…"),
    "upload.unpacked": N_(
        "{file}: {what} to {size}, more than the {limit} limit (TRAINBOARD_MAX_UNPACKED_MB on the "
        "server)."
    ),
    "upload.long_name": N_(
        "{file}: {what} has a name {length:,} characters long; names may have at most {limit}. "
        "Shorten it and upload again."
    ),
    "upload.cells": N_(
        "{file}: {rows:,} rows × {columns:,} columns = {cells:,} values, more than the {limit:,} "
        "Trainboard accepts (TRAINBOARD_MAX_CELLS on the server)."
    ),
    "upload.cells_up_to": N_(
        "{file}: up to {rows:,} rows × {columns:,} columns = {cells:,} values, more than the "
        "{limit:,} Trainboard accepts (TRAINBOARD_MAX_CELLS on the server)."
    ),
    "upload.long_header": N_(
        "{file}: the header row is longer than {limit}; a table's first row holds its column names."
    ),
    "upload.header_columns": N_(
        "{file}: the header has {columns:,} columns, more than the {limit} columns Trainboard "
        "accepts."
    ),
    "upload.text_size": N_(
        "{file}: {size} of text, more than the {limit} Trainboard reads "
        "(TRAINBOARD_MAX_UNPACKED_MB on the server)."
    ),
    "upload.columns": N_(
        "{file}: {columns:,} columns is more than the {limit} Trainboard accepts."
    ),
    "upload.bad_parquet": N_("{file}: not a valid Parquet file ({why})."),
    "upload.nested_column": N_(
        "{file}: column {column!r} is a {kind} column; Trainboard reads plain columns with one "
        "number or text per cell. Flatten it (one column per field or element) and upload again."
    ),
    "upload.bad_xlsx": N_("{file}: not a valid Excel (.xlsx) workbook."),
    "upload.xlsx_parts": N_("{file}: the workbook holds {parts:,} parts; that is no table."),
    "upload.xlsx_ratio": N_(
        "{file}: the workbook expands {ratio:.0f}× (limit {limit}×); that is how zip bombs look, "
        "so it was refused."
    ),
    "upload.xlsx_no_sheet": N_("{file}: the workbook has no worksheet."),
    "upload.long_first_line": N_(
        "{file}: the first line is longer than {limit}; a JSON Lines table holds one flat object "
        "per line."
    ),
    "upload.jsonl_not_json": N_("{file}: the first line is not JSON ({why})."),
    "upload.jsonl_not_object": N_(
        '{file}: each line must be one JSON object, e.g. {{"a": 1, "label": "x"}}.'
    ),
    "upload.jsonl_keys": N_(
        "{file}: {keys:,} keys is more than the {limit} columns Trainboard accepts."
    ),
    "upload.jsonl_nested": N_(
        "{file}: key {key!r} holds a nested object or list; Trainboard reads flat objects with "
        "one number or text per key. Flatten it and upload again."
    ),
    "upload.bad_npz": N_("{file}: can't be read as an .npz: it is not a zip of .npy arrays."),
    "upload.npz_arrays": N_("{file}: {arrays} arrays; an .npz for training holds a few."),
    "upload.array_bytes": N_(
        "{file}: array {array!r} of shape {shape} holds {size}, more than the {limit} limit "
        "(TRAINBOARD_MAX_UNPACKED_MB)."
    ),
    "upload.array_values": N_(
        "{file}: array {array!r} of shape {shape} holds {values:,} values, more than the "
        "{limit:,} Trainboard accepts (TRAINBOARD_MAX_CELLS on the server)."
    ),
    "upload.npz_pixels": N_(
        "{file}: the images hold {pixels:,} pixels in all, more than the {limit:,} allowed "
        "(TRAINBOARD_MAX_PIXELS on the server)."
    ),
    "upload.bad_zip": N_("{file}: not a valid zip archive."),
    "upload.zip_entries": N_(
        "{file}: the archive holds {entries} entries, more than {limit} "
        "(TRAINBOARD_MAX_ZIP_FILES on the server)."
    ),
    "upload.zip_pixels": N_(
        "{file}: the images hold more than {limit:,} pixels in all (the limit, "
        "TRAINBOARD_MAX_PIXELS on the server); use fewer or smaller images."
    ),
    "upload.memory": N_(
        "{file}: the file needs more memory than the {limit} limit while being checked "
        "(TRAINBOARD_CHECK_MEMORY_MB on the server), so it was refused; a file that unpacks to "
        "far more than its size is how compression bombs look. Upload a smaller file or split it."
    ),
    "upload.cpu": N_(
        "{file}: checking the file took more than the {seconds} s of CPU time allowed "
        "(TRAINBOARD_CHECK_CPU_S on the server), so it was refused. Upload a smaller file."
    ),
    "upload.unreadable": N_("{file}: could not be read as a dataset ({why})."),
    # --- A/B over paired seeds: the verdict (engine/abtest.py) --------------------------------
    "ab.too_few": N_(
        "not enough to judge: {pairs} seed pair(s) finished in both arms; a verdict needs at "
        "least 2 (5 recommended)"
    ),
    "ab.better_points": N_("{arm} is better by {diff:.1f} points (95% CI {low:.1f}–{high:.1f})"),
    "ab.better_lower": N_(
        "{arm} is better: {metric} lower by {diff:.3g} (95% CI {low:.3g}–{high:.3g})"
    ),
    "ab.better_higher": N_(
        "{arm} is better: {metric} higher by {diff:.3g} (95% CI {low:.3g}–{high:.3g})"
    ),
    "ab.no_difference_points": N_(
        "no difference shown; about {more} more seed pairs would be needed to detect "
        "{delta:.3g} point(s)"
    ),
    "ab.no_difference": N_(
        "no difference shown; about {more} more seed pairs would be needed to detect a "
        "difference of {delta:.3g} in {metric}"
    ),
    "ab.no_difference_many_points": N_(
        "no difference shown; more than {pairs:,} seed pairs would be needed to detect "
        "{delta:.3g} point(s)"
    ),
    "ab.no_difference_many": N_(
        "no difference shown; more than {pairs:,} seed pairs would be needed to detect a "
        "difference of {delta:.3g} in {metric}"
    ),
    "ab.no_difference_same": N_(
        "no difference shown: both arms scored exactly the same on all {pairs} seeds"
    ),
    "ab.unknown_tip": N_(
        "{tip} is not a tip an A/B group can switch off in preset {preset}; these are: {allowed}"
    ),
    "ab.seeds": N_("the number of seeds is a whole number from 1 to {limit}"),
    "ab.seed_in_change": N_(
        "train.seed can't be the setting under test: an A/B group runs the same seeds in both arms"
    ),
    # --- the model bundle (engine/bundle.py, engine/bundle_predict.py; issue 21) -------------
    "event.bundle_checked": N_(
        "bundle checked on {rows} test rows: model.ts gives the run's own predictions "
        "(largest difference {diff:.2g})"
    ),
    "event.bundle_failed": N_("no bundle offered: {why}"),
    "bundle.classes_differ": N_(
        "model.ts predicted another class than the run on {count} of {rows} test rows"
    ),
    "bundle.probs_differ": N_(
        "model.ts's probabilities differ from the run's by up to {diff:.2g} (more than {tol:g})"
    ),
    "bundle.values_differ": N_(
        "model.ts's predictions differ from the run's by up to {diff:.2g} standard deviations "
        "(more than {tol:g})"
    ),
    "bundle.features_differ": N_(
        "the bundle's columns do not make the features the run trained on"
    ),
    "bundle.columns_missing": N_("the test rows lack the columns {columns}"),
    "bundle.no_model": N_("the run saved no model"),
    "bundle.error": N_("it could not be built ({error})"),
    "bundle.not_here": N_(
        "the bundle was made where the run trained and is not in this data directory"
    ),
    "predict.missing_columns": N_(
        "refused: the file lacks {count} column(s) the model needs: {columns}"
    ),
    "predict.extra_columns": N_("{count} column(s) the model does not use, ignored: {columns}"),
    "predict.unseen": N_(
        "{count} cell(s) hold a category not seen in training ({columns}): read as no "
        "category; rows flagged"
    ),
    "predict.out_of_range": N_(
        "{count} value(s) outside the range seen in training ({columns}): rows flagged"
    ),
    "predict.empty": N_("{count} empty cell(s) ({columns}): filled as in training; rows flagged"),
    "predict.unreadable": N_(
        "{count} cell(s) that could not be read ({columns}): treated as empty; rows flagged"
    ),
    "predict.no_rows": N_("the file has no rows to predict"),
    "predict.score_classification": N_(
        "score on the file's {target} column ({rows} rows): accuracy {accuracy:.4f}, balanced "
        "accuracy {balanced:.4f}, macro-F1 {macro_f1:.4f}"
    ),
    "predict.no_bundle": N_(
        "{run}: no model bundle here: give a finished run's id, its folder or its bundle folder "
        "(a run whose bundle failed its parity check has none; its bundle event says why)"
    ),
    "predict.file_type": N_("{where}: predictions read {allowed}, not {ext}"),
    "predict.too_big": N_("{where}: the file is larger than the upload limit of {limit} MB"),
    "predict.too_slow": N_(
        "{file}: predicting took more than the {seconds:g} s allowed (TRAINBOARD_CHECK_CPU_S on "
        "the server), so it was stopped and nothing was kept. Predict a smaller file."
    ),
    "predict.not_yours": N_("run {run} belongs to {owner}: predict only with your own runs"),
    "export.no_onnx": N_(
        "ONNX export needs the onnx extra: pip install 'trainboard[onnx]' (onnx, onnxscript, "
        "onnxruntime)"
    ),
    "export.no_bundle": N_(
        "this run has no bundle to export: it did not finish, or its bundle failed the parity "
        "check (the run's bundle event says why)"
    ),
    "export.differs": N_(
        "model.onnx differs from model.ts on {rows} rows by up to {diff:.2g} (more than {tol:g}): "
        "not written"
    ),
    "predict.score_regression": N_(
        "score on the file's {target} column ({rows} rows): RMSE {rmse:.6g}, MAE {mae:.6g}, "
        "R² {r2:.4f}"
    ),
    # --- sweeps (issue 23 §3: jobs/sweeps/) ----------------------------------------------------
    "sweep.space_long": N_("a search dimension is at most {limit} characters"),
    "sweep.space_syntax": N_(
        "'{text}' is not a search dimension: write FIELD=LOW:HIGH, FIELD=log:LOW:HIGH, "
        "FIELD=int:LOW:HIGH or FIELD=choice:A,B"
    ),
    "sweep.space_choices": N_("{field}: at most {limit} choices"),
    "sweep.space_range": N_(
        "{field}: the low end must be below the high end, and the choices must differ"
    ),
    "sweep.space_log": N_("{field}: a log scale needs a low end above 0"),
    "sweep.space_empty": N_("name at least one setting to search, e.g. optim.lr=log:1e-4:1"),
    "sweep.space_size": N_("a search space has at most {limit} settings"),
    "sweep.space_budget": N_(
        "{field} is the sweep's budget, not a dimension: set its epochs and rungs instead"
    ),
    "sweep.space_twice": N_("{field} is named twice in the search space"),
    "sweep.trials": N_("the number of trials is a whole number from 1 to {limit}"),
    "sweep.parallel": N_("trials at once is a whole number from 1 to {limit}"),
    "sweep.parallel_quota": N_(
        "{parallel} trials at once is more than the {limit} queued runs one person may have"
    ),
    "sweep.rungs": N_(
        "the rungs need 1 ≤ first rung ≤ epochs, and η (the rungs' factor) from 2 to {eta}"
    ),
    "sweep.not_found": N_("sweep {id} not found"),
    "sweep.not_yours": N_("sweep {id} belongs to {owner}"),
    "sweep.cannot_pause": N_("sweep {id} is {status}: only a running sweep can be paused"),
    "sweep.cannot_resume": N_("sweep {id} is {status}: only a paused sweep can be resumed"),
    "sweep.cannot_cancel": N_("sweep {id} is already {status}"),
    "sweep.no_score": N_("the run ended without a validation score"),
    "event.sweep_paused": N_(
        "sweep {sweep}: paused at {epochs} epochs ({metric} {value:.4g}), its checkpoint kept; "
        "it goes on if it is promoted"
    ),
    "event.sweep_promoted": N_(
        "sweep {sweep}: promoted, it goes on from {epochs} to {next} epochs"
    ),
}
