"""The lab machinery: contract, runner, tracking, exercise and check."""
