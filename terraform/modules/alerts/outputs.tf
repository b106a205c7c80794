output "topic_arn" {
  description = "ARN of the alert topic: [alerts] sns_topic_arn (RETRAIN__ALERTS__SNS_TOPIC_ARN)."
  value       = aws_sns_topic.alerts.arn
}

output "topic_name" {
  description = "Name of the alert topic."
  value       = aws_sns_topic.alerts.name
}
