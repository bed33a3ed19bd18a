#!/usr/bin/env bash
# LocalStack's ready hook (/etc/localstack/init/ready.d) for docker-compose.yml: what the CDK
# app (infra/aws) creates on AWS. The bucket, the event queue with its dead-letter queue
# (redrive after 5 receives), and ObjectCreated notifications for the pending/ prefix only:
# the pipeline's own copies to verified/ and quarantine/ must not come back as events.
set -euo pipefail
BUCKET="${S3_BUCKET:-intake-uploads}"
QUEUE="${SQS_QUEUE_NAME:-intake-events}"
REGION="${AWS_DEFAULT_REGION:-us-east-1}"

awslocal s3api create-bucket --bucket "$BUCKET" >/dev/null 2>&1 || true
awslocal s3api put-public-access-block --bucket "$BUCKET" \
  --public-access-block-configuration BlockPublicAcls=true,IgnorePublicAcls=true,BlockPublicPolicy=true,RestrictPublicBuckets=true
# Browsers upload straight to storage: PUT and POST from the API's origin, ETag exposed (multipart).
awslocal s3api put-bucket-cors --bucket "$BUCKET" --cors-configuration \
  '{"CORSRules":[{"AllowedOrigins":["http://localhost:3000"],"AllowedMethods":["PUT","POST"],"AllowedHeaders":["*"],"ExposeHeaders":["ETag"],"MaxAgeSeconds":600}]}'

DLQ_URL="$(awslocal sqs create-queue --queue-name "$QUEUE-dlq" --query QueueUrl --output text)"
DLQ_ARN="$(awslocal sqs get-queue-attributes --queue-url "$DLQ_URL" --attribute-names QueueArn --query Attributes.QueueArn --output text)"
QUEUE_URL="$(awslocal sqs create-queue --queue-name "$QUEUE" \
  --attributes "{\"VisibilityTimeout\":\"120\",\"RedrivePolicy\":\"{\\\"deadLetterTargetArn\\\":\\\"$DLQ_ARN\\\",\\\"maxReceiveCount\\\":\\\"5\\\"}\"}" \
  --query QueueUrl --output text)"
QUEUE_ARN="$(awslocal sqs get-queue-attributes --queue-url "$QUEUE_URL" --attribute-names QueueArn --query Attributes.QueueArn --output text)"

awslocal s3api put-bucket-notification-configuration --bucket "$BUCKET" --notification-configuration \
  "{\"QueueConfigurations\":[{\"Id\":\"intake-pending\",\"QueueArn\":\"$QUEUE_ARN\",\"Events\":[\"s3:ObjectCreated:*\"],\"Filter\":{\"Key\":{\"FilterRules\":[{\"Name\":\"prefix\",\"Value\":\"pending/\"}]}}}]}"
echo "intake: bucket $BUCKET, queue $QUEUE (dlq $QUEUE-dlq) in $REGION, notifications for pending/ only"
