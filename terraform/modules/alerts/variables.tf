variable "name_prefix" {
  type        = string
  description = "Prefix of the topic name (e.g. retrain-prod): the topic is <name_prefix>-alerts."

  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9-]{0,39}$", var.name_prefix))
    error_message = "name_prefix must be 1-40 letters, digits or hyphens."
  }
}

variable "kms_key_arn" {
  type        = string
  description = "ARN of the KMS key encrypting the topic (publishers need kms:GenerateDataKey and kms:Decrypt on it)."
}

variable "email_addresses" {
  type        = list(string)
  description = "E-mail addresses subscribed to the alert topic (each must confirm the subscription AWS mails it). Empty: no subscription."
  default     = []

  validation {
    condition     = alltrue([for e in var.email_addresses : can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", e))])
    error_message = "Every entry of email_addresses must be an e-mail address."
  }
}
