"""The catalogue of ErrorInfo reasons every service answers with (generated code under v1/)."""
