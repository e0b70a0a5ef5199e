"""marshmallow schemas: the single validator of requests and, through apispec, the source
of the OpenAPI definitions that Swagger UI shows. One module per resource."""
