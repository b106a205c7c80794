# The role every Airflow component runs as, and its one policy: least privilege, scoped to the
# bucket's prefixes, the landing queue, the alert topic and the data key. No wildcard action and
# no "*" resource: every statement names its resources.

data "aws_caller_identity" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id

  landing_prefix = var.prefixes["landing_prefix"]
  all_prefixes   = sort(distinct(values(var.prefixes)))
  # Everything the pipeline writes: every prefix but landing/ (users drop files there).
  output_prefixes = sort([for key, prefix in var.prefixes : prefix if key != "landing_prefix"])

  objects_under = { for prefix in local.all_prefixes : prefix => "${var.bucket_arn}/${prefix}*" }

  # What `retrain retract` (raw/ and features/ -> quarantine/) and `retrain replay`
  # (quarantine/ -> landing/) delete.
  curation_delete_prefixes = sort([for key in ["raw_prefix", "features_prefix", "quarantine_prefix"] : var.prefixes[key] if contains(keys(var.prefixes), key)])

  oidc_issuer = var.eks_oidc_provider_arn == null ? "" : element(split(":oidc-provider/", var.eks_oidc_provider_arn), 1)
}

# -- who may assume the role ------------------------------------------------------------------

data "aws_iam_policy_document" "assume_role" {
  dynamic "statement" {
    for_each = length(var.trusted_services) > 0 ? [var.trusted_services] : []

    content {
      sid     = "ServicesAssumeRole"
      effect  = "Allow"
      actions = contains(statement.value, "pods.eks.amazonaws.com") ? ["sts:AssumeRole", "sts:TagSession"] : ["sts:AssumeRole"]

      principals {
        type        = "Service"
        identifiers = statement.value
      }
    }
  }

  dynamic "statement" {
    for_each = var.eks_oidc_provider_arn == null ? [] : [var.eks_oidc_provider_arn]

    content {
      sid     = "EksServiceAccountsAssumeRoleWithWebIdentity"
      effect  = "Allow"
      actions = ["sts:AssumeRoleWithWebIdentity"]

      principals {
        type        = "Federated"
        identifiers = [statement.value]
      }

      condition {
        test     = "StringEquals"
        variable = "${local.oidc_issuer}:aud"
        values   = ["sts.amazonaws.com"]
      }

      condition {
        test     = "StringEquals"
        variable = "${local.oidc_issuer}:sub"
        values   = [for sa in var.eks_service_accounts : "system:serviceaccount:${sa}"]
      }
    }
  }

  dynamic "statement" {
    for_each = length(var.trusted_role_arns) > 0 ? [var.trusted_role_arns] : []

    content {
      sid     = "TrustedRolesAssumeRole"
      effect  = "Allow"
      actions = ["sts:AssumeRole"]

      principals {
        type        = "AWS"
        identifiers = statement.value
      }
    }
  }
}

resource "aws_iam_role" "airflow" {
  name                 = var.role_name
  description          = "Airflow components of the retraining pipeline (bucket prefixes, landing queue, alert topic)"
  assume_role_policy   = data.aws_iam_policy_document.assume_role.json
  max_session_duration = var.max_session_duration
  permissions_boundary = var.permissions_boundary_arn

  lifecycle {
    precondition {
      condition     = length(var.trusted_services) + length(var.trusted_role_arns) > 0 || var.eks_oidc_provider_arn != null
      error_message = "Nobody could assume the role: set trusted_services, eks_oidc_provider_arn (with eks_service_accounts) or trusted_role_arns."
    }

    precondition {
      condition     = var.eks_oidc_provider_arn == null || length(var.eks_service_accounts) > 0
      error_message = "eks_oidc_provider_arn is set: name the Airflow pods' service accounts in eks_service_accounts."
    }
  }
}

resource "aws_iam_instance_profile" "airflow" {
  count = contains(var.trusted_services, "ec2.amazonaws.com") ? 1 : 0

  name = var.role_name
  role = aws_iam_role.airflow.name
}

# -- what the role may do ---------------------------------------------------------------------

data "aws_iam_policy_document" "pipeline" {
  # Listing is allowed under the pipeline's prefixes only (the landing trigger, the feature and
  # training steps, the ledger, the registry, the watchdog and `retrain status` all list one).
  statement {
    sid       = "ListPipelinePrefixes"
    effect    = "Allow"
    actions   = ["s3:ListBucket"]
    resources = [var.bucket_arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = [for prefix in local.all_prefixes : "${prefix}*"]
    }
  }

  # The pipeline reads everywhere it works: landed files, raw/, features/, models/, the ledger,
  # reports and predictions (HEAD is authorized by s3:GetObject too).
  statement {
    sid       = "ReadPipelineObjects"
    effect    = "Allow"
    actions   = ["s3:GetObject"]
    resources = [for prefix in local.all_prefixes : local.objects_under[prefix]]
  }

  # raw/, quarantine/, features/, models/ (champion.json by conditional write), predictions/,
  # reports/ and ledger/: every prefix but landing/.
  statement {
    sid       = "WritePipelineOutputs"
    effect    = "Allow"
    actions   = ["s3:PutObject"]
    resources = [for prefix in local.output_prefixes : local.objects_under[prefix]]
  }

  # A landed file leaves landing/ once it is copied to raw/ or quarantine/.
  statement {
    sid       = "DeleteRoutedLandingObjects"
    effect    = "Allow"
    actions   = ["s3:DeleteObject"]
    resources = [local.objects_under[local.landing_prefix]]
  }

  # The ledger drops staged ids, closed incidents and the retrain streak.
  statement {
    sid       = "DeleteLedgerEntries"
    effect    = "Allow"
    actions   = ["s3:DeleteObject"]
    resources = [local.objects_under[var.prefixes["ledger_prefix"]]]
  }

  dynamic "statement" {
    for_each = var.allow_curation ? [1] : []

    content {
      sid       = "CurationReplaysIntoLanding"
      effect    = "Allow"
      actions   = ["s3:PutObject"]
      resources = [local.objects_under[local.landing_prefix]]
    }
  }

  dynamic "statement" {
    for_each = var.allow_curation ? [1] : []

    content {
      sid       = "CurationMovesAcceptedAndRejectedFiles"
      effect    = "Allow"
      actions   = ["s3:DeleteObject"]
      resources = [for prefix in local.curation_delete_prefixes : local.objects_under[prefix]]
    }
  }

  # SSE-KMS objects, the encrypted landing queue and the encrypted alert topic.
  statement {
    sid       = "UseDataKey"
    effect    = "Allow"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.kms_key_arn]
  }

  # The event arrival mode's AssetWatcher (SQS message-queue trigger) receives and deletes.
  statement {
    sid       = "ConsumeLandingEvents"
    effect    = "Allow"
    actions   = ["sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage"]
    resources = [var.landing_queue_arn]
  }

  # [alerts] notifier = "sns": the SnsNotifier publishes alerts.
  statement {
    sid       = "PublishAlerts"
    effect    = "Allow"
    actions   = ["sns:Publish"]
    resources = [var.alert_topic_arn]
  }
}

resource "aws_iam_policy" "pipeline" {
  name        = "${var.role_name}-pipeline"
  description = "The retraining pipeline's access: bucket prefixes, data key, landing queue, alert topic"
  policy      = data.aws_iam_policy_document.pipeline.json
}

resource "aws_iam_role_policy_attachment" "pipeline" {
  role       = aws_iam_role.airflow.name
  policy_arn = aws_iam_policy.pipeline.arn
}

# -- who drops files ----------------------------------------------------------------------------

# For the people and systems that upload into landing/ (attach it to their users, groups or
# roles): list and write landing/ only, and the data key, which SSE-KMS uploads need
# (GenerateDataKey for every upload, Decrypt to complete a multipart one).
data "aws_iam_policy_document" "landing_uploader" {
  statement {
    sid       = "ListLanding"
    effect    = "Allow"
    actions   = ["s3:ListBucket"]
    resources = [var.bucket_arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${local.landing_prefix}*"]
    }
  }

  statement {
    sid       = "UploadToLanding"
    effect    = "Allow"
    actions   = ["s3:AbortMultipartUpload", "s3:PutObject"]
    resources = [local.objects_under[local.landing_prefix]]
  }

  statement {
    sid       = "EncryptUploads"
    effect    = "Allow"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.kms_key_arn]
  }
}

resource "aws_iam_policy" "landing_uploader" {
  name        = "${var.role_name}-landing-uploader"
  description = "Upload data files into the retraining pipeline's landing prefix"
  policy      = data.aws_iam_policy_document.landing_uploader.json
}
