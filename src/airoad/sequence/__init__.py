"""Phase 3 sequences: recurrent networks, time series and text."""
