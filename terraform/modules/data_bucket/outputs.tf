output "bucket" {
  description = "Name of the data bucket: [storage] bucket (RETRAIN__STORAGE__BUCKET)."
  value       = aws_s3_bucket.data.id
}

output "bucket_arn" {
  description = "ARN of the data bucket, for IAM policies and the event notification's source condition."
  value       = aws_s3_bucket.data.arn
}

output "log_bucket" {
  description = "Name of the bucket holding the data bucket's S3 server access logs."
  value       = aws_s3_bucket.logs.id
}

output "kms_key_arn" {
  description = "ARN of the dedicated KMS key encrypting the bucket's objects, the landing queues and the alert topic."
  value       = aws_kms_key.data.arn
}

output "kms_key_alias" {
  description = "Alias of the dedicated KMS key."
  value       = aws_kms_alias.data.name
}
