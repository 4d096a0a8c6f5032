"""{{ cookiecutter.project_name }}: features and model code for this project."""
