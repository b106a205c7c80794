# The SNS topic the pipeline's alerts go to ([alerts] notifier = "sns": the amazon provider's
# SnsNotifier publishes through the Airflow connection), encrypted with the deployment's key, and
# the e-mail subscriptions. Slack, a pager or a chat bridge subscribe to the same topic.

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

data "aws_region" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  alarm_arns = "arn:${data.aws_partition.current.partition}:cloudwatch:${data.aws_region.current.region}:${local.account_id}:alarm:${var.name_prefix}-*"
}

resource "aws_sns_topic" "alerts" {
  name              = "${var.name_prefix}-alerts"
  kms_master_key_id = var.kms_key_arn
}

# Principals of this account publish through their IAM policies (the Airflow role may, on this
# topic only); the topic policy adds the deployment's CloudWatch alarms and refuses plain HTTP.
data "aws_iam_policy_document" "alerts" {
  statement {
    sid       = "DeploymentAlarmsPublish"
    effect    = "Allow"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.alerts.arn]

    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }

    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = [local.alarm_arns]
    }
  }

  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.alerts.arn]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_sns_topic_policy" "alerts" {
  arn    = aws_sns_topic.alerts.arn
  policy = data.aws_iam_policy_document.alerts.json
}

resource "aws_sns_topic_subscription" "email" {
  for_each = toset(var.email_addresses)

  topic_arn = aws_sns_topic.alerts.arn
  protocol  = "email"
  endpoint  = each.value
}
