# -- the deployment: where it goes and what its resources are called ----------------------------

variable "environment" {
  type        = string
  description = "Name of this environment (dev, prod): ends every name (<name_prefix>-<environment>-...)."

  validation {
    condition     = can(regex("^[a-z][a-z0-9]{1,9}$", var.environment))
    error_message = "environment must be 2-10 lower-case letters or digits, starting with a letter."
  }
}

variable "region" {
  type        = string
  description = "AWS region of every resource: [storage] region and the Airflow connection's region_name."

  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]$", var.region))
    error_message = "region must be an AWS region name such as eu-west-1."
  }
}

variable "name_prefix" {
  type        = string
  description = "First part of every resource name (queues, topic, role, key alias, alarms)."
  default     = "retrain"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,20}$", var.name_prefix))
    error_message = "name_prefix must be 1-21 lower-case letters, digits or hyphens, starting with a letter."
  }
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

# -- retention and deletion: each env states its own ----------------------------------------------

variable "quarantine_expiration_days" {
  type        = number
  description = "Days rejected files and their reports are kept under the quarantine prefix."
}

variable "reports_expiration_days" {
  type        = number
  description = "Days objects under the reports prefix are kept (pages rewritten on every publication stay current)."
}

variable "noncurrent_version_expiration_days" {
  type        = number
  description = "Days an overwritten or deleted object version is kept."
  default     = 30
}

variable "abort_incomplete_multipart_upload_days" {
  type        = number
  description = "Days after which an incomplete multipart upload is aborted."
  default     = 7
}

variable "access_log_expiration_days" {
  type        = number
  description = "Days the S3 server access logs are kept."
  default     = 365
}

variable "kms_deletion_window_days" {
  type        = number
  description = "Waiting period before the data key is deleted once scheduled for deletion (7-30)."
  default     = 30
}

variable "force_destroy" {
  type        = bool
  description = "Let `terraform destroy` empty and delete the buckets (every object version lost). Keep false wherever the data matters."
  default     = false
}

# -- events and alerts ------------------------------------------------------------------------------

variable "alert_email_addresses" {
  type        = list(string)
  description = "E-mail addresses subscribed to the alert topic."
  default     = []
}

variable "landing_queue_visibility_timeout_seconds" {
  type        = number
  description = "Seconds a received landing notification stays invisible before it is delivered again."
  default     = 300
}

variable "landing_queue_max_receive_count" {
  type        = number
  description = "Receives after which a landing notification moves to the dead-letter queue."
  default     = 5
}

# -- who runs Airflow, and what its role may do -----------------------------------------------------

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

variable "allow_curation" {
  type        = bool
  description = "Let the Airflow role also run `retrain retract` and `retrain replay`. Off: operators run them with their own credentials."
  default     = false
}

variable "permissions_boundary_arn" {
  type        = string
  description = "Permissions boundary for the Airflow role, where the account requires one. Null: none."
  default     = null
}
