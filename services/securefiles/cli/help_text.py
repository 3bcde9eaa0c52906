"""What every command's --help ends with: an example, the exit codes and the environment it reads."""

from __future__ import annotations

EXIT_CODES = ("0 ok · 1 any other error (e.g. services unreachable) · 2 invalid input",
              "3 unauthenticated or denied · 4 checks pending · 5 not found · 6 already exists")

CLIENT_ENVIRONMENT = (
    ("SECUREFILES_CONFIG", "client config (default: $XDG_CONFIG_HOME/securefiles/client.toml)"),
    ("XDG_CONFIG_HOME", "default ~/.config"),
    ("SECUREFILES_TOKEN", "your token (overrides the config's)"),
    ("SECUREFILES_PROJECT", "default project (overrides the config's; --project overrides both)"),
    ("SECUREFILES_STORAGE_ENDPOINT", "host:port of storage (overrides the config's)"),
    ("SECUREFILES_AUTHZ_ENDPOINT", "host:port of authz"),
    ("SECUREFILES_KMS_ENDPOINTS", "eu=host:port,us=host:port"),
    ("SECUREFILES_CA_FILE", "CA that signed the services' certificates"),
)
JOB_ENVIRONMENT = (
    ("SECUREFILES_JOB_TOKEN", "the job's token (from `runs start`); else the CI provider's OIDC token:"),
    ("ACTIONS_ID_TOKEN_REQUEST_URL, _TOKEN", "GitHub Actions (`permissions: id-token: write`)"),
    ("SECUREFILES_OIDC_TOKEN(_FILE)", "GitLab `id_tokens:`, Jenkins, Azure, Buildkite"),
    ("SECUREFILES_AUDIENCE", "the audience to ask for (default securefiles)"),
    ("AGENT_TEMPDIRECTORY", "where files go without --dest (Azure Pipelines)"),
    ("RUNNER_TEMP", "where files go without --dest (GitHub Actions)"),
    ("TF_BUILD", "Azure Pipelines: set REF.secureFilePath with ##vso[task.setvariable]"),
    ("GITHUB_ACTIONS, GITHUB_OUTPUT", "GitHub Actions: ::warning:: lines, REF_path in $GITHUB_OUTPUT"),
)
SERVICE_ENVIRONMENT = (
    ("SECUREFILES_*", "every service setting; see README 'Configuration of the services'"),
)
NO_ENVIRONMENT: tuple[tuple[str, str], ...] = ()

# Commands that are not clients of the services: no --project/--output, their own environment.
LOCAL_COMMANDS = {
    ("up",): (("XDG_CONFIG_HOME, HOME", "where the default client config link goes"),
              ("SECUREFILES_*", "passed on to the services it starts")),
    ("serve",): SERVICE_ENVIRONMENT,
    ("db", "upgrade"): (("SECUREFILES_DATABASE_URL", "the database, unless --database-url is given"),),
    ("init-secrets",): NO_ENVIRONMENT,
    ("completion",): NO_ENVIRONMENT,
    ("web",): SERVICE_ENVIRONMENT,
    ("backup",): NO_ENVIRONMENT,
    ("restore",): NO_ENVIRONMENT,
}

EXAMPLES: dict[tuple[str, ...], str] = {
    ("up",): "securefiles up --port-base 7700 --regions eu,us",
    ("serve",): "SECUREFILES_LISTEN=0.0.0.0:7700 ... securefiles serve storage",
    ("db", "upgrade"): "securefiles db upgrade authz --database-url postgresql+psycopg://u:pw@db/securefiles_authz",
    ("status",): "securefiles status",
    ("init-secrets",): "securefiles init-secrets --dir deploy/secrets --regions eu,us "
                       "--storage-endpoint storage:7700 --authz-endpoint authz:7700 "
                       "--kms-endpoints eu=kms-eu:7700,us=kms-us:7700",
    ("completion",): 'eval "$(securefiles completion bash)"   # in ~/.bashrc; zsh: "$(securefiles completion zsh)"',
    ("files", "upload"): "securefiles files upload signing.p12 --property team=ios --parse-password-file p12.pass",
    ("files", "list"): "securefiles files list --name-pattern 'ios-*' --expiring-within 30d",
    ("files", "show"): "securefiles files show signing.p12 --output json",
    ("files", "update"): "securefiles files update signing.p12 --rename ios-signing.p12 --property team=mobile",
    ("files", "delete"): "securefiles files delete signing.p12 --yes",
    ("files", "replace"): "securefiles files replace signing.p12 renewed.p12 --reason 'certificate renewed'",
    ("files", "versions"): "securefiles files versions signing.p12",
    ("files", "rollback"): "securefiles files rollback signing.p12 --to-version 1 --reason 'renewal broke signing'",
    ("files", "permissions"): "securefiles files permissions signing.p12",
    ("files", "inheritance"): "securefiles files inheritance signing.p12 off",
    ("library", "show"): "securefiles library show",
    ("library", "update"): "securefiles library update --allow-replace true --keep-versions 5",
    ("projects", "create"): "securefiles projects create ios --region us",
    ("projects", "list"): "securefiles projects list",
    ("roles", "assign"): "securefiles roles assign --principal user:bob --role user --file signing.p12",
    ("roles", "list"): "securefiles roles list --file signing.p12",
    ("roles", "delete"): "securefiles roles delete --principal user:bob --file signing.p12",
    ("pipelines", "create"): "securefiles pipelines create ios-release",
    ("pipelines", "list"): "securefiles pipelines list",
    ("pipelines", "authorize"): "securefiles pipelines authorize signing.p12 ios-release   # or: --all",
    ("pipelines", "revoke"): "securefiles pipelines revoke signing.p12 ios-release",
    ("pipelines", "delete"): "securefiles pipelines delete ios-release",
    ("runs", "start"): "securefiles runs start ios-release --branch refs/heads/main --output json",
    ("runs", "complete"): "securefiles runs complete 42",
    ("runs", "list"): "securefiles runs list --pipeline ios-release --running",
    ("runs", "request"): "securefiles runs request signing.p12 --run 42",
    ("tokens", "issue"): "securefiles tokens issue service:jenkins --ttl 720h",
    ("tokens", "list"): "securefiles tokens list --subject service:jenkins",
    ("tokens", "revoke"): "securefiles tokens revoke 3f2c9a0b6d8e4f1a9b7c5d3e2f1a0b9c",
    ("trusts", "add"): "securefiles trusts add app-release --pipeline ios-release --github org/app "
                       "--claim ref=refs/heads/main",
    ("trusts", "list"): "securefiles trusts list",
    ("trusts", "show"): "securefiles trusts show app-release --output json",
    ("trusts", "delete"): "securefiles trusts delete app-release",
    ("login",): "securefiles login            # or: securefiles login --browser",
    ("logout",): "securefiles logout",
    ("web",): "SECUREFILES_OIDC_LOGIN_ISSUER=... securefiles web   # securefiles up starts it for you",
    ("checks", "add"): "securefiles checks add signing.p12 approval --approver user:bob --min-approvals 1",
    ("checks", "list"): "securefiles checks list signing.p12",
    ("checks", "delete"): "securefiles checks delete signing.p12 3",
    ("approvals", "list"): "securefiles approvals list --pending",
    ("approvals", "approve"): "securefiles approvals approve 7 --comment 'ship it'",
    ("approvals", "reject"): "securefiles approvals reject 7 --comment 'not today'",
    ("groups", "add-member"): "securefiles groups add-member group:release-managers user:bob",
    ("groups", "remove-member"): "securefiles groups remove-member group:release-managers user:bob",
    ("groups", "list"): "securefiles groups list",
    ("keys", "list"): "securefiles keys list --region eu",
    ("keys", "rotate"): "securefiles keys rotate --region eu --reason 'yearly rotation'",
    ("keys", "rewrap"): "securefiles keys rewrap --region eu",
    ("keys", "disable"): "securefiles keys disable 2 --region eu",
    ("keys", "enable"): "securefiles keys enable 2 --region eu",
    ("keys", "destroy"): "securefiles keys destroy 2 --region eu",
    ("audit", "list"): "securefiles audit list --service storage --resource projects/default/secureFiles/",
    ("audit", "verify"): "securefiles audit verify",
    ("audit", "export"): "securefiles audit export --to audit.jsonl --state export.state --follow",
    ("backup",): "securefiles backup --to /backups/securefiles-2026-11-28 --state-dir .securefiles",
    ("restore",): "securefiles restore --from /backups/securefiles-2026-11-28 --state-dir .securefiles",
    ("access", "request"): "securefiles access request --project ios --reason 'INC-42: signing fails' --ttl 1h",
    ("access", "approve"): "securefiles access approve 3",
    ("access", "revoke"): "securefiles access revoke 3",
    ("access", "list"): "securefiles access list",
    ("agent", "download"): "securefiles agent download signing.p12 'profiles/*.mobileprovision' --dest ./job-temp",
    ("agent", "cleanup"): "securefiles agent cleanup",
    ("agent", "whoami"): "securefiles agent whoami --output json",
}


def environment_for(path: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    if path in LOCAL_COMMANDS:
        return LOCAL_COMMANDS[path]
    if path[0] == "agent":
        return JOB_ENVIRONMENT + CLIENT_ENVIRONMENT
    return CLIENT_ENVIRONMENT


def is_client_command(path: tuple[str, ...]) -> bool:
    return path not in LOCAL_COMMANDS


def epilog_for(path: tuple[str, ...]) -> str:
    """Example, exit codes and environment of the command at `path` (KeyError: none written yet)."""
    lines = ["example:", f"  {EXAMPLES[path]}", "", "exit codes:", *(f"  {line}" for line in EXIT_CODES), "",
             "environment:"]
    environment = environment_for(path)
    width = max((len(name) for name, _ in environment), default=0)
    lines += [f"  {name:<{width}}  {meaning}" for name, meaning in environment] or ["  (none)"]
    return "\n".join(lines)
