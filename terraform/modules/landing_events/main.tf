# S3 event notifications for the landing prefix: ObjectCreated events go to an encrypted SQS
# queue (the event arrival mode's AssetWatcher consumes it) with a dead-letter queue behind it.
# Only the data bucket, in this account, may send to the queue.

data "aws_caller_identity" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
}

resource "aws_sqs_queue" "dead_letter" {
  name                              = "${var.name_prefix}-landing-events-dlq"
  message_retention_seconds         = var.message_retention_seconds
  kms_master_key_id                 = var.kms_key_arn
  kms_data_key_reuse_period_seconds = 300
}

resource "aws_sqs_queue" "landing" {
  name                              = "${var.name_prefix}-landing-events"
  visibility_timeout_seconds        = var.visibility_timeout_seconds
  message_retention_seconds         = var.message_retention_seconds
  receive_wait_time_seconds         = 20 # long polling: fewer empty receives
  kms_master_key_id                 = var.kms_key_arn
  kms_data_key_reuse_period_seconds = 300

  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.dead_letter.arn
    maxReceiveCount     = var.max_receive_count
  })
}

# The dead-letter queue takes messages from the landing queue only.
resource "aws_sqs_queue_redrive_allow_policy" "dead_letter" {
  queue_url = aws_sqs_queue.dead_letter.id

  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.landing.arn]
  })
}

data "aws_iam_policy_document" "landing_queue" {
  statement {
    sid       = "DataBucketSendsLandingEvents"
    effect    = "Allow"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.landing.arn]

    principals {
      type        = "Service"
      identifiers = ["s3.amazonaws.com"]
    }

    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [var.bucket_arn]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }

  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["sqs:*"]
    resources = [aws_sqs_queue.landing.arn]

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

resource "aws_sqs_queue_policy" "landing" {
  queue_url = aws_sqs_queue.landing.id
  policy    = data.aws_iam_policy_document.landing_queue.json
}

data "aws_iam_policy_document" "dead_letter" {
  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["sqs:*"]
    resources = [aws_sqs_queue.dead_letter.arn]

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

resource "aws_sqs_queue_policy" "dead_letter" {
  queue_url = aws_sqs_queue.dead_letter.id
  policy    = data.aws_iam_policy_document.dead_letter.json
}

# One notification configuration per bucket (S3 keeps a single one): every event source of the
# data bucket belongs here.
resource "aws_s3_bucket_notification" "landing" {
  bucket = var.bucket_id

  queue {
    id            = "landing-object-created"
    queue_arn     = aws_sqs_queue.landing.arn
    events        = ["s3:ObjectCreated:*"]
    filter_prefix = var.landing_prefix
  }

  # S3 sends a test event when the configuration is saved: the queue must accept it by then.
  depends_on = [aws_sqs_queue_policy.landing]
}

# A notification in the dead-letter queue was received max_receive_count times and never
# processed: say so on the alert topic (the reconciler still recovers the object itself).
resource "aws_cloudwatch_metric_alarm" "dead_letter" {
  count = var.alarm_topic_arn == null ? 0 : 1

  alarm_name          = "${var.name_prefix}-landing-events-dead-letters"
  alarm_description   = "Landing notifications reached ${aws_sqs_queue.dead_letter.name}: they were received ${var.max_receive_count} times and never deleted."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = aws_sqs_queue.dead_letter.name }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = [var.alarm_topic_arn]
  ok_actions          = [var.alarm_topic_arn]
}
