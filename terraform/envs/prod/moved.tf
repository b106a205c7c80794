# The four modules used to be called from each env directly; they are now called by
# modules/retrain. These blocks move a deployment's existing state to the new addresses, so the
# first plan after the change shows moves, not a destroy and re-create of the buckets, key, queues,
# topic and role. Keep them: a state that has already moved is unaffected.

moved {
  from = module.data_bucket
  to   = module.retrain.module.data_bucket
}

moved {
  from = module.alerts
  to   = module.retrain.module.alerts
}

moved {
  from = module.landing_events
  to   = module.retrain.module.landing_events
}

moved {
  from = module.airflow_iam
  to   = module.retrain.module.airflow_iam
}
