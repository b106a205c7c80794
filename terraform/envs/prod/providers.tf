provider "aws" {
  region = var.region

  # Refuse to plan or apply against any other account than the ones listed (empty: any).
  allowed_account_ids = length(var.allowed_account_ids) > 0 ? var.allowed_account_ids : null

  default_tags {
    tags = merge(var.tags, {
      Project     = "airflow-retrain"
      Environment = local.environment
      ManagedBy   = "terraform"
    })
  }
}
