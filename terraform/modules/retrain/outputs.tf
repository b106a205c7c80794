# Every value the project needs, named after where it goes: retrain.toml's [storage] section (or
# its RETRAIN__SECTION__KEY environment overrides) and the Airflow connection. Every env forwards
# each of them under the same name and description. README: terraform/.

locals {
  # No key pair and no role_arn: every component runs as the Airflow role (IRSA, Pod Identity,
  # ECS task role, instance profile, or an AWS profile that assumes it), and both the hook and the
  # landing trigger take credentials from the default chain.
  connection_extra = { region_name = var.region }
}

output "bucket" {
  description = "[storage] bucket (RETRAIN__STORAGE__BUCKET): the data bucket."
  value       = module.data_bucket.bucket
}

output "region" {
  description = "[storage] region (RETRAIN__STORAGE__REGION) and the Airflow connection's region_name extra."
  value       = var.region
}

output "prefixes" {
  description = "[storage] *_prefix, one entry per config key (landing_prefix, raw_prefix, ...): the values retrain.toml must hold."
  value       = local.prefixes
}

output "storage_config" {
  description = "The whole [storage] section of retrain.toml for this deployment, key for key (endpoint_url empty: AWS S3)."
  value = merge(local.prefixes, {
    bucket       = module.data_bucket.bucket
    endpoint_url = ""
    region       = var.region
  })
}

output "kms_key_arn" {
  description = "ARN of the data key (bucket objects, landing queues, alert topic)."
  value       = module.data_bucket.kms_key_arn
}

output "access_log_bucket" {
  description = "Bucket holding the data bucket's S3 server access logs."
  value       = module.data_bucket.log_bucket
}

output "landing_queue_url" {
  description = "URL of the landing-events queue (S3 ObjectCreated under the landing prefix): the event arrival mode's SQS AssetWatcher polls it."
  value       = module.landing_events.queue_url
}

output "landing_queue_arn" {
  description = "ARN of the landing-events queue."
  value       = module.landing_events.queue_arn
}

output "landing_dead_letter_queue_url" {
  description = "URL of the landing-events dead-letter queue (its alarm notifies the alert topic)."
  value       = module.landing_events.dead_letter_queue_url
}

output "airflow_role_arn" {
  description = "ARN of the role the Airflow components run as (IRSA annotation eks.amazonaws.com/role-arn, Pod Identity association, ECS task role, instance profile, or the role_arn of an AWS profile)."
  value       = module.airflow_iam.role_arn
}

output "airflow_instance_profile_name" {
  description = "EC2 instance profile of the Airflow role (null unless ec2.amazonaws.com is trusted)."
  value       = module.airflow_iam.instance_profile_name
}

output "landing_uploader_policy_arn" {
  description = "Managed policy to attach to the users, groups or roles that drop files into the landing prefix."
  value       = module.airflow_iam.landing_uploader_policy_arn
}

output "alert_topic_arn" {
  description = "[alerts] sns_topic_arn (RETRAIN__ALERTS__SNS_TOPIC_ARN), with [alerts] notifier = \"sns\"."
  value       = module.alerts.topic_arn
}

output "airflow_connection" {
  description = "The Airflow connection [orchestration] aws_conn_id names: conn_id, conn_type aws, extra region_name. No keys: credentials come from the Airflow role through the default credential chain."
  value = {
    conn_id   = local.aws_conn_id
    conn_type = "aws"
    extra     = local.connection_extra
  }
}

output "airflow_connection_env" {
  description = "The same connection as an environment variable for every Airflow component (AIRFLOW_CONN_<CONN_ID> in Airflow's JSON format)."
  value = {
    (upper("AIRFLOW_CONN_${local.aws_conn_id}")) = jsonencode({ conn_type = "aws", extra = local.connection_extra })
  }
}

output "retrain_environment" {
  description = "RETRAIN__SECTION__KEY overrides that point the project at this deployment, for every Airflow component's environment."
  value = {
    RETRAIN__STORAGE__BUCKET             = module.data_bucket.bucket
    RETRAIN__STORAGE__REGION             = var.region
    RETRAIN__STORAGE__ENDPOINT_URL       = ""
    RETRAIN__STORAGE__LANDING_PREFIX     = local.prefixes.landing_prefix
    RETRAIN__STORAGE__RAW_PREFIX         = local.prefixes.raw_prefix
    RETRAIN__STORAGE__QUARANTINE_PREFIX  = local.prefixes.quarantine_prefix
    RETRAIN__STORAGE__FEATURES_PREFIX    = local.prefixes.features_prefix
    RETRAIN__STORAGE__MODELS_PREFIX      = local.prefixes.models_prefix
    RETRAIN__STORAGE__PREDICTIONS_PREFIX = local.prefixes.predictions_prefix
    RETRAIN__STORAGE__REPORTS_PREFIX     = local.prefixes.reports_prefix
    RETRAIN__STORAGE__LEDGER_PREFIX      = local.prefixes.ledger_prefix
    RETRAIN__ORCHESTRATION__AWS_CONN_ID  = local.aws_conn_id
    RETRAIN__ALERTS__NOTIFIER            = "sns"
    RETRAIN__ALERTS__SNS_TOPIC_ARN       = module.alerts.topic_arn
  }
}
