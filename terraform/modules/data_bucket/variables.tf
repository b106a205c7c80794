variable "bucket_name" {
  type        = string
  description = "Name of the data bucket: [storage] bucket in retrain.toml (RETRAIN__STORAGE__BUCKET). Globally unique."

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.bucket_name))
    error_message = "bucket_name must be a valid S3 bucket name (3-63 lower-case letters, digits, dots, hyphens)."
  }
}

variable "log_bucket_name" {
  type        = string
  description = "Name of the separate bucket that receives the data bucket's S3 server access logs."

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.log_bucket_name))
    error_message = "log_bucket_name must be a valid S3 bucket name (3-63 lower-case letters, digits, dots, hyphens)."
  }
}

variable "name_prefix" {
  type        = string
  description = "Prefix of the names of the KMS alias and of the CloudWatch alarms allowed to use the key (e.g. retrain-prod)."

  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9-]{0,39}$", var.name_prefix))
    error_message = "name_prefix must be 1-40 letters, digits or hyphens."
  }
}

variable "prefixes" {
  type        = map(string)
  description = "The project's S3 prefixes keyed like the [storage] section of retrain.toml (landing_prefix, raw_prefix, ...): terraform/retrain_config.json."

  validation {
    condition     = alltrue([for k in ["landing_prefix", "quarantine_prefix", "reports_prefix"] : contains(keys(var.prefixes), k)])
    error_message = "prefixes must contain at least landing_prefix, quarantine_prefix and reports_prefix."
  }

  validation {
    condition     = alltrue([for v in values(var.prefixes) : can(regex("^([A-Za-z0-9][A-Za-z0-9_.=-]*/)+$", v))])
    error_message = "Every prefix must be non-empty, relative (no leading /) and end with /."
  }
}

variable "quarantine_expiration_days" {
  type        = number
  description = "Days after which objects under the quarantine prefix (rejected files and their reports) expire."

  validation {
    condition     = var.quarantine_expiration_days >= 1 && floor(var.quarantine_expiration_days) == var.quarantine_expiration_days
    error_message = "quarantine_expiration_days must be a whole number of days, at least 1."
  }
}

variable "reports_expiration_days" {
  type        = number
  description = "Days after which objects under the reports prefix expire (pages rewritten on every publication, such as index.html, stay current)."

  validation {
    condition     = var.reports_expiration_days >= 1 && floor(var.reports_expiration_days) == var.reports_expiration_days
    error_message = "reports_expiration_days must be a whole number of days, at least 1."
  }
}

variable "noncurrent_version_expiration_days" {
  type        = number
  description = "Days a noncurrent object version (an overwritten or deleted object) is kept before it expires, bucket-wide."
  default     = 30

  validation {
    condition     = var.noncurrent_version_expiration_days >= 1 && floor(var.noncurrent_version_expiration_days) == var.noncurrent_version_expiration_days
    error_message = "noncurrent_version_expiration_days must be a whole number of days, at least 1."
  }
}

variable "abort_incomplete_multipart_upload_days" {
  type        = number
  description = "Days after which S3 aborts an incomplete multipart upload and deletes its parts."
  default     = 7

  validation {
    condition     = var.abort_incomplete_multipart_upload_days >= 1 && floor(var.abort_incomplete_multipart_upload_days) == var.abort_incomplete_multipart_upload_days
    error_message = "abort_incomplete_multipart_upload_days must be a whole number of days, at least 1."
  }
}

variable "access_log_expiration_days" {
  type        = number
  description = "Days the S3 server access logs are kept in the log bucket."
  default     = 365

  validation {
    condition     = var.access_log_expiration_days >= 1 && floor(var.access_log_expiration_days) == var.access_log_expiration_days
    error_message = "access_log_expiration_days must be a whole number of days, at least 1."
  }
}

variable "kms_deletion_window_days" {
  type        = number
  description = "Waiting period (7-30 days) before the data key is deleted once scheduled for deletion."
  default     = 30

  validation {
    condition     = var.kms_deletion_window_days >= 7 && var.kms_deletion_window_days <= 30
    error_message = "kms_deletion_window_days must be between 7 and 30."
  }
}

variable "kms_rotation_period_days" {
  type        = number
  description = "Days between automatic rotations of the data key's material (90-2560)."
  default     = 365

  validation {
    condition     = var.kms_rotation_period_days >= 90 && var.kms_rotation_period_days <= 2560
    error_message = "kms_rotation_period_days must be between 90 and 2560."
  }
}

variable "force_destroy" {
  type        = bool
  description = "Let `terraform destroy` delete both buckets with every object version in them. Keep false wherever the data matters."
  default     = false
}
