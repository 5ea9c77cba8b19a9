"""Django forms generated from the form descriptions of tasks and start events (Camunda
formData, JSON Schema): shared by the inbox (tasks_ui) and the start pages (processes)."""
