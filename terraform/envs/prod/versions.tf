terraform {
  required_version = "~> 1.10"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 6.0"
    }
  }

  # State in S3 with S3-native locking (Terraform >= 1.10). Partial configuration: the state
  # bucket, key and region come from `terraform init -backend-config=backend.hcl` (see
  # backend.hcl.example), so no account-specific name is written here.
  backend "s3" {
    encrypt      = true
    use_lockfile = true
  }
}
