# The dev deployment: modules/retrain with dev's settings. Every env's variables.tf, outputs.tf,
# versions.tf and providers.tf are the same (a test keeps them so); only this file differs.

locals {
  environment = "dev"
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

  # dev: short retention, a key that can be deleted after a week, buckets that `terraform destroy`
  # empties, and the Airflow role may run `retrain retract` and `retrain replay`.
  quarantine_expiration_days             = 30
  reports_expiration_days                = 90
  noncurrent_version_expiration_days     = 7
  abort_incomplete_multipart_upload_days = 2
  access_log_expiration_days             = 30
  kms_deletion_window_days               = 7
  force_destroy                          = true
  allow_curation                         = true
}
