"""Analysis of predictions: per-model metrics, aggregation, criteria and countermeasures, effects with CIs, experiment tables."""
