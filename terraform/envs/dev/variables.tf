# What differs between deployments (account, region, names, who runs Airflow, who gets alerts),
# set in terraform.tfvars. Declared as modules/retrain declares them (a test compares the two) and
# validated where they are used: the provider's here, the rest in the modules. The env's own
# settings (retention, deletion, curation) are arguments in main.tf, not variables.

variable "region" {
  type        = string
  description = "AWS region of every resource: [storage] region and the Airflow connection's region_name."
}

variable "allowed_account_ids" {
  type        = list(string)
  description = "AWS account ids this environment may be applied to (the provider refuses any other). Empty: not checked."
  default     = []

  validation {
    condition     = alltrue([for id in var.allowed_account_ids : can(regex("^[0-9]{12}$", id))])
    error_message = "allowed_account_ids must be 12-digit account ids."
  }
}

variable "tags" {
  type        = map(string)
  description = "Extra tags for every resource (Project, Environment and ManagedBy are always set)."
  default     = {}
}

variable "name_prefix" {
  type        = string
  description = "First part of every resource name (queues, topic, role, key alias, alarms)."
  default     = "retrain"
}

variable "bucket_name" {
  type        = string
  description = "Name of the data bucket ([storage] bucket). Globally unique, so there is no default: e.g. <company>-retrain-<env>."
}

variable "log_bucket_name" {
  type        = string
  description = "Name of the access-log bucket. Null: <bucket_name>-access-logs."
  default     = null
}

variable "alert_email_addresses" {
  type        = list(string)
  description = "E-mail addresses subscribed to the alert topic."
  default     = []
}

variable "airflow_trusted_services" {
  type        = list(string)
  description = "AWS services whose compute runs Airflow and may assume its role: ec2.amazonaws.com, ecs-tasks.amazonaws.com, pods.eks.amazonaws.com."
  default     = []
}

variable "eks_oidc_provider_arn" {
  type        = string
  description = "ARN of the EKS cluster's IAM OIDC provider when Airflow runs on EKS with IRSA. Null: no IRSA."
  default     = null
}

variable "eks_service_accounts" {
  type        = list(string)
  description = "\"namespace:name\" of the Airflow pods' Kubernetes service accounts (IRSA)."
  default     = []
}

variable "airflow_trusted_role_arns" {
  type        = list(string)
  description = "IAM roles that may assume the Airflow role (Airflow's hosts run as one of them and assume it through an AWS profile: see terraform/README.md)."
  default     = []
}

variable "permissions_boundary_arn" {
  type        = string
  description = "Permissions boundary for the Airflow role, where the account requires one. Null: none."
  default     = null
}
