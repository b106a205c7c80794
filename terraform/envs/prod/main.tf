# The prod deployment: modules/retrain with prod's settings. Every env's variables.tf, outputs.tf,
# versions.tf and providers.tf are the same (a test keeps them so); only this file differs.

locals {
  environment = "prod"
}

module "retrain" {
  source = "../../modules/retrain"

  environment = local.environment
  region      = var.region
  name_prefix = var.name_prefix
  bucket_name = var.bucket_name

  log_bucket_name           = var.log_bucket_name
  alert_email_addresses     = var.alert_email_addresses
  airflow_trusted_services  = var.airflow_trusted_services
  eks_oidc_provider_arn     = var.eks_oidc_provider_arn
  eks_service_accounts      = var.eks_service_accounts
  airflow_trusted_role_arns = var.airflow_trusted_role_arns
  permissions_boundary_arn  = var.permissions_boundary_arn

  # prod: long retention, the longest key deletion window, buckets that `terraform destroy` refuses
  # to delete while they hold data, and curation left to the operators' own credentials.
  quarantine_expiration_days             = 90
  reports_expiration_days                = 365
  noncurrent_version_expiration_days     = 30
  abort_incomplete_multipart_upload_days = 7
  access_log_expiration_days             = 365
  kms_deletion_window_days               = 30
  force_destroy                          = false
  allow_curation                         = false
}
