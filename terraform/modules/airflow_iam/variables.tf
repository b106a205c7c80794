variable "role_name" {
  type        = string
  description = "Name of the IAM role every Airflow component (scheduler, dag-processor, triggerer, workers, api-server) runs as."

  validation {
    condition     = can(regex("^[A-Za-z0-9+=,.@_-]{1,56}$", var.role_name))
    error_message = "role_name must be 1-56 characters of A-Z, a-z, 0-9 and +=,.@_- (the policy name adds a suffix)."
  }
}

variable "bucket_arn" {
  type        = string
  description = "ARN of the data bucket the pipeline reads and writes."

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:s3:::[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.bucket_arn))
    error_message = "bucket_arn must be the ARN of one S3 bucket (no wildcard, no object path)."
  }
}

variable "prefixes" {
  type        = map(string)
  description = "The project's S3 prefixes keyed like the [storage] section of retrain.toml (terraform/retrain_config.json): every permission is scoped to them."

  validation {
    condition     = contains(keys(var.prefixes), "landing_prefix") && contains(keys(var.prefixes), "ledger_prefix")
    error_message = "prefixes must contain at least landing_prefix and ledger_prefix."
  }

  validation {
    condition     = alltrue([for v in values(var.prefixes) : can(regex("^([A-Za-z0-9][A-Za-z0-9_.=-]*/)+$", v))])
    error_message = "Every prefix must be non-empty, relative (no leading /) and end with / (an empty prefix would grant the whole bucket)."
  }

  validation {
    condition     = alltrue([for a in values(var.prefixes) : length([for b in values(var.prefixes) : b if startswith(b, a)]) == 1])
    error_message = "Prefixes must be distinct and none may contain another (a write to one would reach into the other)."
  }
}

variable "kms_key_arn" {
  type        = string
  description = "ARN of the data key (bucket objects, landing queue, alert topic): the role may Decrypt and GenerateDataKey with it only."

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[A-Za-z0-9-]+$", var.kms_key_arn))
    error_message = "kms_key_arn must be the ARN of one KMS key."
  }
}

variable "landing_queue_arn" {
  type        = string
  description = "ARN of the landing-events queue: the role may receive, delete and read the attributes of its messages."

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:sqs:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]+$", var.landing_queue_arn))
    error_message = "landing_queue_arn must be the ARN of one SQS queue."
  }
}

variable "alert_topic_arn" {
  type        = string
  description = "ARN of the alert topic: the role may publish to it."

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]+$", var.alert_topic_arn))
    error_message = "alert_topic_arn must be the ARN of one SNS topic."
  }
}

variable "trusted_services" {
  type        = list(string)
  description = "AWS services whose compute may assume the role: ec2.amazonaws.com (an instance profile is created), ecs-tasks.amazonaws.com, pods.eks.amazonaws.com (EKS Pod Identity)."
  default     = []

  validation {
    condition     = alltrue([for s in var.trusted_services : contains(["ec2.amazonaws.com", "ecs-tasks.amazonaws.com", "pods.eks.amazonaws.com"], s)])
    error_message = "trusted_services may contain only ec2.amazonaws.com, ecs-tasks.amazonaws.com and pods.eks.amazonaws.com."
  }
}

variable "eks_oidc_provider_arn" {
  type        = string
  description = "ARN of the EKS cluster's IAM OIDC provider, for IAM roles for service accounts (IRSA). Null: no IRSA trust."
  default     = null

  validation {
    condition     = var.eks_oidc_provider_arn == null || can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:oidc-provider/.+$", var.eks_oidc_provider_arn))
    error_message = "eks_oidc_provider_arn must be the ARN of an IAM OIDC provider."
  }
}

variable "eks_service_accounts" {
  type        = list(string)
  description = "Kubernetes service accounts (\"namespace:name\") of the Airflow pods that may assume the role through IRSA."
  default     = []

  validation {
    condition     = alltrue([for sa in var.eks_service_accounts : can(regex("^[a-z0-9-]+:[a-z0-9.-]+$", sa))])
    error_message = "Each eks_service_accounts entry must be \"namespace:name\" (no wildcards)."
  }
}

variable "trusted_role_arns" {
  type        = list(string)
  description = "IAM roles that may assume this one (e.g. the role Airflow's hosts already run as; they assume it through an AWS profile with role_arn and credential_source)."
  default     = []

  validation {
    condition     = alltrue([for r in var.trusted_role_arns : can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:role/.+$", r))])
    error_message = "Each trusted_role_arns entry must be an IAM role ARN (no wildcards, no account root)."
  }
}

variable "allow_curation" {
  type        = bool
  description = "Also grant what `retrain retract` and `retrain replay` need when run with this role: write landing/, delete raw/, features/ and quarantine/. Off: operators run them with their own credentials."
  default     = false
}

variable "max_session_duration" {
  type        = number
  description = "Longest session the role's credentials last, in seconds (3600-43200)."
  default     = 3600

  validation {
    condition     = var.max_session_duration >= 3600 && var.max_session_duration <= 43200
    error_message = "max_session_duration must be between 3600 and 43200."
  }
}

variable "permissions_boundary_arn" {
  type        = string
  description = "ARN of a permissions boundary policy for the role, where the account requires one. Null: none."
  default     = null
}
