variable "name_prefix" {
  type        = string
  description = "Prefix of the queue and alarm names (e.g. retrain-prod): the queue is <name_prefix>-landing-events."

  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9-]{0,39}$", var.name_prefix))
    error_message = "name_prefix must be 1-40 letters, digits or hyphens."
  }
}

variable "bucket_id" {
  type        = string
  description = "Name of the data bucket whose landing prefix sends ObjectCreated events."
}

variable "bucket_arn" {
  type        = string
  description = "ARN of the data bucket: the only source the queue policy accepts (aws:SourceArn)."

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:s3:::[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.bucket_arn))
    error_message = "bucket_arn must be the ARN of one S3 bucket (no wildcard, no object path)."
  }
}

variable "landing_prefix" {
  type        = string
  description = "The landing prefix ([storage] landing_prefix): only objects created under it are notified."

  validation {
    condition     = can(regex("^([A-Za-z0-9][A-Za-z0-9_.=-]*/)+$", var.landing_prefix))
    error_message = "landing_prefix must be non-empty, relative (no leading /) and end with /."
  }
}

variable "kms_key_arn" {
  type        = string
  description = "ARN of the KMS key encrypting both queues (its key policy lets this bucket's notifications use it)."
}

variable "visibility_timeout_seconds" {
  type        = number
  description = "How long a received notification stays invisible to other consumers before it is delivered again (seconds)."
  default     = 300

  validation {
    condition     = var.visibility_timeout_seconds >= 0 && var.visibility_timeout_seconds <= 43200
    error_message = "visibility_timeout_seconds must be between 0 and 43200."
  }
}

variable "message_retention_seconds" {
  type        = number
  description = "How long an unconsumed notification is kept in the queue and in the dead-letter queue (seconds; the SQS maximum, 14 days, by default)."
  default     = 1209600

  validation {
    condition     = var.message_retention_seconds >= 60 && var.message_retention_seconds <= 1209600
    error_message = "message_retention_seconds must be between 60 and 1209600."
  }
}

variable "max_receive_count" {
  type        = number
  description = "Receives after which a notification that was never deleted moves to the dead-letter queue."
  default     = 5

  validation {
    condition     = var.max_receive_count >= 1 && var.max_receive_count <= 1000
    error_message = "max_receive_count must be between 1 and 1000."
  }
}

variable "alarm_topic_arn" {
  type        = string
  description = "SNS topic that the dead-letter-queue alarm notifies (null: no alarm)."
  default     = null
}
