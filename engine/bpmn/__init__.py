"""The SpiffWorkflow adapter: parsing, scripting and serialization live here and nowhere else."""
