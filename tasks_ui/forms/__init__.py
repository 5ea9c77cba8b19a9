"""Django forms generated from task form descriptions (Camunda formData, JSON Schema)."""
