"""Testing BPMN processes like code: a pytest plugin (`baton.testing.plugin`), the runner it
uses (`baton.testing.runner`), SpiffArena's test files (`baton.testing.spiffarena`) and process
coverage (`baton.testing.coverage`). See docs/testing-processes.md."""
