"""The SpiffWorkflow adapter, the only package that imports SpiffWorkflow: parsing, scripting,
serialization and timers, and the token work the services ask for by name (`run`, `failures`,
`walks`, `repair`, `migration`); `types` names its objects for code outside this package."""
