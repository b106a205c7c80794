# The outputs of modules/retrain, forwarded under the same names and descriptions: where each
# value goes is in terraform/README.md ("Where each output goes").

output "bucket" {
  description = "[storage] bucket (RETRAIN__STORAGE__BUCKET): the data bucket."
  value       = module.retrain.bucket
}

output "region" {
  description = "[storage] region (RETRAIN__STORAGE__REGION) and the Airflow connection's region_name extra."
  value       = module.retrain.region
}

output "prefixes" {
  description = "[storage] *_prefix, one entry per config key (landing_prefix, raw_prefix, ...): the values retrain.toml must hold."
  value       = module.retrain.prefixes
}

output "storage_config" {
  description = "The whole [storage] section of retrain.toml for this deployment, key for key (endpoint_url empty: AWS S3)."
  value       = module.retrain.storage_config
}

output "kms_key_arn" {
  description = "ARN of the data key (bucket objects, landing queues, alert topic)."
  value       = module.retrain.kms_key_arn
}

output "access_log_bucket" {
  description = "Bucket holding the data bucket's S3 server access logs."
  value       = module.retrain.access_log_bucket
}

output "landing_queue_url" {
  description = "URL of the landing-events queue (S3 ObjectCreated under the landing prefix): the event arrival mode's SQS AssetWatcher polls it."
  value       = module.retrain.landing_queue_url
}

output "landing_queue_arn" {
  description = "ARN of the landing-events queue."
  value       = module.retrain.landing_queue_arn
}

output "landing_dead_letter_queue_url" {
  description = "URL of the landing-events dead-letter queue (its alarm notifies the alert topic)."
  value       = module.retrain.landing_dead_letter_queue_url
}

output "airflow_role_arn" {
  description = "ARN of the role the Airflow components run as (IRSA annotation eks.amazonaws.com/role-arn, Pod Identity association, ECS task role, instance profile, or the role_arn of an AWS profile)."
  value       = module.retrain.airflow_role_arn
}

output "airflow_instance_profile_name" {
  description = "EC2 instance profile of the Airflow role (null unless ec2.amazonaws.com is trusted)."
  value       = module.retrain.airflow_instance_profile_name
}

output "landing_uploader_policy_arn" {
  description = "Managed policy to attach to the users, groups or roles that drop files into the landing prefix."
  value       = module.retrain.landing_uploader_policy_arn
}

output "alert_topic_arn" {
  description = "[alerts] sns_topic_arn (RETRAIN__ALERTS__SNS_TOPIC_ARN), with [alerts] notifier = \"sns\"."
  value       = module.retrain.alert_topic_arn
}

output "airflow_connection" {
  description = "The Airflow connection [orchestration] aws_conn_id names: conn_id, conn_type aws, extra region_name. No keys: credentials come from the Airflow role through the default credential chain."
  value       = module.retrain.airflow_connection
}

output "airflow_connection_env" {
  description = "The same connection as an environment variable for every Airflow component (AIRFLOW_CONN_<CONN_ID> in Airflow's JSON format)."
  value       = module.retrain.airflow_connection_env
}

output "retrain_environment" {
  description = "RETRAIN__SECTION__KEY overrides that point the project at this deployment, for every Airflow component's environment."
  value       = module.retrain.retrain_environment
}
