"""One runner module per built lab: `Config`, `QUICK` and `run(config, ctx) -> LabResult`."""
