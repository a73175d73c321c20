"""Record: the reproducibility manifest (schema, make, diff, validate) and the images it is read from."""
