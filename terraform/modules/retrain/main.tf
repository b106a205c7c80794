# One deployment of the retraining pipeline's AWS side: the four modules wired together. Every
# env (envs/dev, envs/prod) calls this module once with its own settings and forwards its outputs.

locals {
  # The project's prefixes and connection id: one file, read here only and checked against
  # retrain.toml and retrain.config by tests/terraform/test_tf_config_agreement.py.
  project     = jsondecode(file("${path.module}/../../retrain_config.json"))
  prefixes    = local.project.storage
  aws_conn_id = local.project.orchestration.aws_conn_id

  name_prefix     = "${var.name_prefix}-${var.environment}"
  log_bucket_name = coalesce(var.log_bucket_name, "${var.bucket_name}-access-logs")
}

module "data_bucket" {
  source = "../data_bucket"

  bucket_name                            = var.bucket_name
  log_bucket_name                        = local.log_bucket_name
  name_prefix                            = local.name_prefix
  prefixes                               = local.prefixes
  quarantine_expiration_days             = var.quarantine_expiration_days
  reports_expiration_days                = var.reports_expiration_days
  noncurrent_version_expiration_days     = var.noncurrent_version_expiration_days
  abort_incomplete_multipart_upload_days = var.abort_incomplete_multipart_upload_days
  access_log_expiration_days             = var.access_log_expiration_days
  kms_deletion_window_days               = var.kms_deletion_window_days
  force_destroy                          = var.force_destroy
}

module "alerts" {
  source = "../alerts"

  name_prefix     = local.name_prefix
  kms_key_arn     = module.data_bucket.kms_key_arn
  email_addresses = var.alert_email_addresses
}

module "landing_events" {
  source = "../landing_events"

  name_prefix                = local.name_prefix
  bucket_id                  = module.data_bucket.bucket
  bucket_arn                 = module.data_bucket.bucket_arn
  landing_prefix             = local.prefixes.landing_prefix
  kms_key_arn                = module.data_bucket.kms_key_arn
  visibility_timeout_seconds = var.landing_queue_visibility_timeout_seconds
  max_receive_count          = var.landing_queue_max_receive_count
  alarm_topic_arn            = module.alerts.topic_arn
}

module "airflow_iam" {
  source = "../airflow_iam"

  role_name                = "${local.name_prefix}-airflow"
  bucket_arn               = module.data_bucket.bucket_arn
  prefixes                 = local.prefixes
  kms_key_arn              = module.data_bucket.kms_key_arn
  landing_queue_arn        = module.landing_events.queue_arn
  alert_topic_arn          = module.alerts.topic_arn
  trusted_services         = var.airflow_trusted_services
  eks_oidc_provider_arn    = var.eks_oidc_provider_arn
  eks_service_accounts     = var.eks_service_accounts
  trusted_role_arns        = var.airflow_trusted_role_arns
  allow_curation           = var.allow_curation
  permissions_boundary_arn = var.permissions_boundary_arn
}
