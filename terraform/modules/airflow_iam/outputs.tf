output "role_arn" {
  description = "ARN of the Airflow role: the identity behind the Airflow connection (IRSA annotation, Pod Identity, ECS task role, instance profile, or an AWS profile's role_arn)."
  value       = aws_iam_role.airflow.arn
}

output "role_name" {
  description = "Name of the Airflow role."
  value       = aws_iam_role.airflow.name
}

output "policy_arn" {
  description = "ARN of the managed policy holding the pipeline's permissions."
  value       = aws_iam_policy.pipeline.arn
}

output "instance_profile_name" {
  description = "Name of the EC2 instance profile for the role (null unless ec2.amazonaws.com is trusted)."
  value       = one(aws_iam_instance_profile.airflow[*].name)
}

output "landing_uploader_policy_arn" {
  description = "ARN of the managed policy to attach to whoever uploads into the landing prefix (write landing/, use the data key)."
  value       = aws_iam_policy.landing_uploader.arn
}
