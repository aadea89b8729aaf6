"""Read-only checks of the AWS account and region a stack deploys to, run before `pulumi up` (`make preflight`).

Each check prints one line; a blocker says how to fix it. Exit status: 0 ready, 1 blockers found, 2 usage or config
error. Only read calls are made (docs/deploy.md lists the permissions), through boto3 and the standard credential
chain, so `AWS_ENDPOINT_URL` points every call at another endpoint (the tests use moto).
"""
