"""TableExampleGen: strict readers of the raw tables and an ExampleGen that uses them."""
