output "queue_url" {
  description = "URL of the landing-events queue: what the event arrival mode's SQS AssetWatcher polls."
  value       = aws_sqs_queue.landing.id
}

output "queue_arn" {
  description = "ARN of the landing-events queue (the Airflow role may receive, delete and read attributes on it)."
  value       = aws_sqs_queue.landing.arn
}

output "dead_letter_queue_url" {
  description = "URL of the dead-letter queue holding notifications received max_receive_count times without being deleted."
  value       = aws_sqs_queue.dead_letter.id
}

output "dead_letter_queue_arn" {
  description = "ARN of the dead-letter queue."
  value       = aws_sqs_queue.dead_letter.arn
}
