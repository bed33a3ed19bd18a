import { App, Validations } from "aws-cdk-lib";
import { AwsSolutionsChecks } from "cdk-nag";
import { APP_CONTEXT, IntakeStack, type ImageSource, type IntakeStackProps } from "./stack.ts";

/**
 * The CDK app: `npx cdk synth --app "node infra/aws/src/app.ts" -c config=<file.json>` or
 * each setting as -c key=value (README, AWS deployment). Required: account, region,
 * bucketNamePrefix, image (imageUri, or ecrRepository + imageTag), clamdImage (intake-clamd,
 * infra/clamd/Dockerfile), the VPC
 * (vpcId, availabilityZones, privateSubnetIds, publicSubnetIds: comma-separated),
 * databaseUrlSecretArn, redisUrlSecretArn, metricsTokenSecretArn. Optional: corsOrigins
 * (comma-separated), certificateArn, publicUrl, databaseSecurityGroupId, redisSecurityGroupId.
 */
const app = new App({ context: APP_CONTEXT });
const get = (key: string): string | undefined => {
  const v: unknown = app.node.tryGetContext(key);
  return v === undefined || v === "" ? undefined : String(v);
};
const need = (key: string): string => {
  const v = get(key);
  if (!v) throw new Error(`missing context ${key} (pass -c ${key}=...)`);
  return v;
};
const list = (key: string): string[] => (get(key) ?? "").split(",").map((s) => s.trim()).filter(Boolean);

const imageUri = get("imageUri");
const image: ImageSource = imageUri ? { imageUri } : { ecrRepository: need("ecrRepository"), tag: need("imageTag") };
const props: IntakeStackProps = {
  env: { account: need("account"), region: need("region") },
  bucketNamePrefix: need("bucketNamePrefix"),
  corsOrigins: list("corsOrigins"),
  image,
  clamdImage: need("clamdImage"),
  vpc: { vpcId: need("vpcId"), availabilityZones: list("availabilityZones"), privateSubnetIds: list("privateSubnetIds"), publicSubnetIds: list("publicSubnetIds") },
  database: { urlSecretArn: need("databaseUrlSecretArn"), securityGroupId: get("databaseSecurityGroupId"), port: Number(get("databasePort") ?? 5432) },
  redis: { urlSecretArn: need("redisUrlSecretArn"), securityGroupId: get("redisSecurityGroupId"), port: Number(get("redisPort") ?? 6379) },
  metricsTokenSecretArn: need("metricsTokenSecretArn"),
  certificateArn: get("certificateArn"),
  publicUrl: get("publicUrl"),
};
new IntakeStack(app, get("stackName") ?? "Intake", props);
Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
app.synth();
