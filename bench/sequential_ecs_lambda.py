#!/usr/bin/env python3
"""The hand-written deploy script that cairn replaces, as a benchmark peer.

Creates what `stacks/ecs-lambda.toml` creates, one AWS call after another,
checking first whether each object exists (as such scripts do): three IAM
roles (ECS task execution with an inline pull-and-log policy, ECS task,
Lambda execution) with their assume-role policies, an ECR repository, an ECS cluster, a task definition
using the roles and the repository's image, and a Lambda function (a tiny
zipped handler), waiting for it to become Active. Then deletes everything in
reverse order. Prints one JSON object: the time of each phase and the number
of calls.

Needs boto3 (the project's .venv has it, with moto). Point it at the
AWS-compatible test server with --endpoint-url (or AWS_ENDPOINT_URL).

Usage: sequential_ecs_lambda.py [--endpoint-url URL] [--prefix NAME] [--region R]
                                [--phase both|create|delete]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
import zipfile

import boto3
from botocore.exceptions import ClientError

HANDLER = b"def handler(event, context):\n    return {'ok': True}\n"


EXEC_POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": [
                    "ecr:GetAuthorizationToken",
                    "ecr:BatchCheckLayerAvailability",
                    "ecr:GetDownloadUrlForLayer",
                    "ecr:BatchGetImage",
                    "logs:CreateLogStream",
                    "logs:PutLogEvents",
                ],
                "Resource": "*",
            }
        ],
    }
)


def trust(service: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}
            ],
        }
    )


def code_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        info = zipfile.ZipInfo("index.py", date_time=(1980, 1, 1, 0, 0, 0))
        z.writestr(info, HANDLER)
    return buf.getvalue()


class Counted:
    """Counts the calls made through a boto3 client."""

    def __init__(self, client, counter: list[int]):
        self._client = client
        self._counter = counter

    def __getattr__(self, name):
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr

        def call(*args, **kwargs):
            self._counter[0] += 1
            return attr(*args, **kwargs)

        return call


def code_of(e: ClientError) -> str:
    return e.response.get("Error", {}).get("Code", "")


def create(c: dict, p: str) -> dict:
    iam, ecr, ecs, lam = c["iam"], c["ecr"], c["ecs"], c["lambda"]
    roles = {}
    for key, service in (
        ("exec", "ecs-tasks.amazonaws.com"),
        ("task", "ecs-tasks.amazonaws.com"),
        ("lambda", "lambda.amazonaws.com"),
    ):
        name = f"{p}-{key}"
        try:
            roles[key] = iam.get_role(RoleName=name)["Role"]["Arn"]
            continue
        except ClientError as e:
            if code_of(e) != "NoSuchEntity":
                raise
        roles[key] = iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust(service))["Role"]["Arn"]
    # What AmazonECSTaskExecutionRolePolicy grants, inline (the test server
    # has no AWS-managed policies unless told to load them).
    iam.put_role_policy(RoleName=f"{p}-exec", PolicyName="pull-and-log", PolicyDocument=EXEC_POLICY)

    try:
        repo = ecr.describe_repositories(repositoryNames=[f"{p}-repo"])["repositories"][0]
    except ClientError as e:
        if code_of(e) != "RepositoryNotFoundException":
            raise
        repo = ecr.create_repository(repositoryName=f"{p}-repo")["repository"]

    clusters = ecs.describe_clusters(clusters=[f"{p}-cluster"])["clusters"]
    if not [x for x in clusters if x.get("status") == "ACTIVE"]:
        ecs.create_cluster(clusterName=f"{p}-cluster")

    try:
        found = ecs.describe_task_definition(taskDefinition=f"{p}-task")["taskDefinition"]
        active = found.get("status", "ACTIVE") == "ACTIVE"
    except ClientError:
        active = False
    if not active:
        ecs.register_task_definition(
            family=f"{p}-task",
            executionRoleArn=roles["exec"],
            taskRoleArn=roles["task"],
            networkMode="awsvpc",
            requiresCompatibilities=["FARGATE"],
            cpu="256",
            memory="512",
            containerDefinitions=[
                {"name": "app", "image": f"{repo['repositoryUri']}:latest", "essential": True}
            ],
        )

    try:
        lam.get_function(FunctionName=f"{p}-fn")
    except ClientError as e:
        if code_of(e) != "ResourceNotFoundException":
            raise
        lam.create_function(
            FunctionName=f"{p}-fn",
            Runtime="python3.12",
            Role=roles["lambda"],
            Handler="index.handler",
            Code={"ZipFile": code_zip()},
            Environment={"Variables": {"CLUSTER": f"{p}-cluster", "TASK": f"{p}-task"}},
        )
    for _ in range(600):
        state = lam.get_function_configuration(FunctionName=f"{p}-fn").get("State", "Active")
        if state == "Active":
            break
        time.sleep(0.1)
    return roles


def delete(c: dict, p: str) -> None:
    iam, ecr, ecs, lam = c["iam"], c["ecr"], c["ecs"], c["lambda"]
    lam.delete_function(FunctionName=f"{p}-fn")
    for arn in ecs.list_task_definitions(familyPrefix=f"{p}-task")["taskDefinitionArns"]:
        ecs.deregister_task_definition(taskDefinition=arn)
    ecs.delete_cluster(cluster=f"{p}-cluster")
    ecr.delete_repository(repositoryName=f"{p}-repo", force=True)
    iam.delete_role_policy(RoleName=f"{p}-exec", PolicyName="pull-and-log")
    for key in ("lambda", "task", "exec"):
        iam.delete_role(RoleName=f"{p}-{key}")


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--endpoint-url", default=os.environ.get("AWS_ENDPOINT_URL"))
    ap.add_argument("--region", default=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))
    ap.add_argument("--prefix", default="seqbench")
    ap.add_argument("--phase", choices=("both", "create", "delete"), default="both",
                    help="create, delete, or both (default) in this process")
    a = ap.parse_args(argv)

    counter = [0]
    session = boto3.session.Session(region_name=a.region)
    clients = {
        name: Counted(session.client(name, endpoint_url=a.endpoint_url), counter)
        for name in ("iam", "ecr", "ecs", "lambda")
    }
    result: dict = {"tool": "sequential-boto3", "prefix": a.prefix}
    if a.phase in ("both", "create"):
        t0 = time.perf_counter()
        create(clients, a.prefix)
        result["create_s"] = round(time.perf_counter() - t0, 4)
        result["create_calls"] = counter[0]
    if a.phase in ("both", "delete"):
        counter[0] = 0
        t1 = time.perf_counter()
        delete(clients, a.prefix)
        result["delete_s"] = round(time.perf_counter() - t1, 4)
        result["delete_calls"] = counter[0]
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
