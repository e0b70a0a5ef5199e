"""Package data: the OpenAPI template (``template.yml``) the document is built from."""
