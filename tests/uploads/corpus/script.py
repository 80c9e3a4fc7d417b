print('an uploaded file is never executed')
