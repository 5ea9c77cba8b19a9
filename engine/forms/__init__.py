"""Checking what a person submits for a task or a start event against its form, one module
per idea: `submission` (what may be set at all), one validator per dialect (`camunda`,
`json_schema`), and `references` (following a schema's `$ref`s)."""

from .camunda import clean_camunda_fields
from .json_schema import (
    NON_FIELD_KEY,
    JsonSchemaError,
    json_schema_error_list,
    json_schema_errors,
    prepare_json_schema,
    validate_json_schema_submission,
)
from .submission import clean_submission, declared_fields, read_only_fields

__all__ = [
    "NON_FIELD_KEY",
    "JsonSchemaError",
    "clean_camunda_fields",
    "clean_submission",
    "declared_fields",
    "json_schema_error_list",
    "json_schema_errors",
    "prepare_json_schema",
    "read_only_fields",
    "validate_json_schema_submission",
]
