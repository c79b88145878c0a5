#!/usr/bin/env bash
# Build the image in Azure Container Registry and run it on Azure App Service.
#
#   infra/deploy.sh --name pichat-demo --location westeurope [--with-sql] [--with-openai]
#                   [--with-speech] [--with-redis] [--instances N] [--tag TAG] [--dry-run]
#
# Safe to run again: every step either is idempotent in the Azure CLI (group, plan,
# identity, role assignment, settings) or looks before it creates (registry, app,
# optional services). --dry-run prints every az command instead of running it.
# Needs: az (logged in: az login), run from a checkout of this repository.
# App settings come from infra/appsettings.json, the same file main.bicep loads.
# --instances N (scale-out: N copies of the container) needs --with-redis.
set -euo pipefail

usage() {
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
    exit "${1:-0}"
}

name="" location="westeurope" tag="" sku="B1" instances=1 dry_run=0
with_sql=0 with_openai=0 with_speech=0 with_redis=0
while (($#)); do
    case "$1" in
        --name) name="$2"; shift 2 ;;
        --location) location="$2"; shift 2 ;;
        --tag) tag="$2"; shift 2 ;;
        --sku) sku="$2"; shift 2 ;;
        --instances) instances="$2"; shift 2 ;;
        --with-sql) with_sql=1; shift ;;
        --with-openai) with_openai=1; shift ;;
        --with-speech) with_speech=1; shift ;;
        --with-redis) with_redis=1; shift ;;
        --dry-run) dry_run=1; shift ;;
        -h | --help) usage 0 ;;
        *) echo "deploy.sh: unknown argument $1" >&2; usage 2 ;;
    esac
done
[[ -n "$name" ]] || { echo "deploy.sh: --name is required" >&2; usage 2; }
[[ "$name" =~ ^[a-z][a-z0-9-]{2,40}$ ]] || {
    echo "deploy.sh: --name: 3-41 lowercase letters, digits or dashes" >&2
    exit 2
}

[[ "$instances" =~ ^[1-9][0-9]?$ ]] || { echo "deploy.sh: --instances: 1 to 30" >&2; exit 2; }
if ((instances > 1 && !with_redis)); then
    echo "deploy.sh: --instances above 1 needs --with-redis (events across instances)" >&2
    exit 2
fi

root="$(cd "$(dirname "$0")/.." && pwd)"
group="${name}-rg"
plan="${name}-plan"
app="${name}"
identity="${name}-identity"
registry="$(echo "${name}acr" | tr -d '-')"
image_name="pichat-backend"
if [[ -z "$tag" ]]; then
    tag="$(git -C "$root" rev-parse --short HEAD 2>/dev/null || date -u +%Y%m%d%H%M%S)"
fi
image="${registry}.azurecr.io/${image_name}:${tag}"

exec 3>&1 # the dry run's listing, also from inside $(...)

# az_do ARGS...: run `az ARGS` (with --dry-run: print it, quoted for a shell, and do nothing).
az_do() {
    if ((dry_run)); then
        local line="az" arg
        for arg in "$@"; do
            if [[ "$arg" =~ ^[A-Za-z0-9_./:=@,+-]+$ ]]; then
                line+=" $arg"
            else
                line+=" '${arg//\'/\'\\\'\'}'"
            fi
        done
        echo "$line" >&3
    else
        az "$@"
    fi
}

# az_get PLACEHOLDER ARGS...: the output of `az ARGS` (with --dry-run: PLACEHOLDER).
az_get() {
    local placeholder="$1"
    shift
    az_do "$@"
    if ((dry_run)); then echo "$placeholder"; fi
}

# exists ARGS...: whether `az ARGS` finds the resource (with --dry-run: printed, and "no").
exists() {
    if ((dry_run)); then
        az_do "$@"
        return 1
    fi
    az "$@" --output none >/dev/null 2>&1
}

echo "== resource group ${group} in ${location}"
az_do group create --name "$group" --location "$location" --output none

echo "== container registry ${registry}"
if ! exists acr show --name "$registry" --resource-group "$group"; then
    az_do acr create --name "$registry" --resource-group "$group" --sku Basic \
        --admin-enabled false --output none
fi
az_do acr build --registry "$registry" --image "${image_name}:${tag}" --file "$root/Dockerfile" "$root"

echo "== identity ${identity}, allowed to pull from ${registry}"
az_do identity create --name "$identity" --resource-group "$group" --output none
identity_id="$(az_get '<identity-id>' identity show --name "$identity" --resource-group "$group" --query id --output tsv)"
principal_id="$(az_get '<principal-id>' identity show --name "$identity" --resource-group "$group" --query principalId --output tsv)"
client_id="$(az_get '<client-id>' identity show --name "$identity" --resource-group "$group" --query clientId --output tsv)"
registry_id="$(az_get '<registry-id>' acr show --name "$registry" --resource-group "$group" --query id --output tsv)"
az_do role assignment create --assignee-object-id "$principal_id" \
    --assignee-principal-type ServicePrincipal --role AcrPull --scope "$registry_id" --output none

echo "== App Service plan ${plan} (Linux, ${sku}) and web app ${app}"
az_do appservice plan create --name "$plan" --resource-group "$group" --location "$location" \
    --is-linux --sku "$sku" --number-of-workers "$instances" --output none
if ! exists webapp show --name "$app" --resource-group "$group"; then
    az_do webapp create --name "$app" --resource-group "$group" --plan "$plan" \
        --container-image-name "$image" --assign-identity "$identity_id" --output none
fi
az_do webapp identity assign --name "$app" --resource-group "$group" --identities "$identity_id" \
    --output none
# Pull with the identity (no registry password), then point the app at this build.
az_do webapp config set --name "$app" --resource-group "$group" \
    --generic-configurations "{\"acrUseManagedIdentityCreds\": true, \"acrUserManagedIdentityID\": \"${client_id}\"}" \
    --output none
az_do webapp config container set --name "$app" --resource-group "$group" \
    --container-image-name "$image" --container-registry-url "https://${registry}.azurecr.io" \
    --output none
# WebSockets for /ws; Always On so idle connections are not unloaded; /readyz takes an
# instance out of rotation as soon as it drains; TLS at the front end only.
az_do webapp config set --name "$app" --resource-group "$group" --web-sockets-enabled true \
    --always-on true --http20-enabled true --min-tls-version 1.2 --ftps-state Disabled \
    --generic-configurations '{"healthCheckPath": "/readyz"}' --output none
az_do webapp update --name "$app" --resource-group "$group" --https-only true --output none

echo "== app settings from infra/appsettings.json"
az_do webapp config appsettings set --name "$app" --resource-group "$group" \
    --settings "@${root}/infra/appsettings.json" --output none
has_token="$(az_get '0' webapp config appsettings list --name "$app" --resource-group "$group" \
    --query "length([?name=='API_TOKEN'])" --output tsv)"
if [[ "$has_token" == "0" ]]; then
    # The first deployment makes the default user's token; later ones keep it.
    token="${API_TOKEN:-$(LC_ALL=C tr -dc 'A-Za-z0-9' </dev/urandom | head -c 40 || true)}"
    metrics_token="${METRICS_TOKEN:-$(LC_ALL=C tr -dc 'A-Za-z0-9' </dev/urandom | head -c 40 || true)}"
    if ((dry_run)); then token="<generated>" metrics_token="<generated>"; fi
    az_do webapp config appsettings set --name "$app" --resource-group "$group" \
        --settings "API_TOKEN=${token}" "METRICS_TOKEN=${metrics_token}" --output none
    echo "API_TOKEN (the default user's; shown once): ${token}"
    echo "METRICS_TOKEN (for scraping /metrics; shown once): ${metrics_token}"
fi

if ((with_sql)); then
    sql_server="${name}-sql"
    echo "== Azure SQL ${sql_server}/pichat"
    if ! exists sql server show --name "$sql_server" --resource-group "$group"; then
        sql_password="${DB_PASSWORD:-$(LC_ALL=C tr -dc 'A-Za-z0-9' </dev/urandom | head -c 32 || true)Aa1!}"
        if ((dry_run)); then sql_password="<generated>"; fi
        az_do sql server create --name "$sql_server" --resource-group "$group" \
            --location "$location" --admin-user pichatadmin --admin-password "$sql_password" \
            --output none
        az_do webapp config appsettings set --name "$app" --resource-group "$group" \
            --settings "DB_PASSWORD=${sql_password}" --output none
    fi
    # 0.0.0.0 to 0.0.0.0: "allow Azure services", which is how App Service reaches it.
    az_do sql server firewall-rule create --server "$sql_server" --resource-group "$group" \
        --name AllowAzureServices --start-ip-address 0.0.0.0 --end-ip-address 0.0.0.0 \
        --output none
    az_do sql db create --server "$sql_server" --resource-group "$group" --name pichat \
        --edition GeneralPurpose --compute-model Serverless --family Gen5 --capacity 1 \
        --auto-pause-delay 60 --output none
    az_do webapp config appsettings set --name "$app" --resource-group "$group" \
        --settings "DB_HOST=${sql_server}.database.windows.net" DB_NAME=pichat \
        DB_USER=pichatadmin --output none
fi

if ((with_openai)); then
    openai="${name}-openai"
    echo "== Azure OpenAI ${openai}"
    if ! exists cognitiveservices account show --name "$openai" --resource-group "$group"; then
        az_do cognitiveservices account create --name "$openai" --resource-group "$group" \
            --location "$location" --kind OpenAI --sku S0 --custom-domain "$openai" --output none
    fi
    az_do cognitiveservices account deployment create --name "$openai" \
        --resource-group "$group" --deployment-name gpt-4o --model-name gpt-4o \
        --model-version 2024-08-06 --model-format OpenAI --sku-name Standard --sku-capacity 10 \
        --output none
    openai_key="$(az_get '<openai-key>' cognitiveservices account keys list --name "$openai" \
        --resource-group "$group" --query key1 --output tsv)"
    az_do webapp config appsettings set --name "$app" --resource-group "$group" \
        --settings "AZURE_OPENAI_ENDPOINT=https://${openai}.openai.azure.com/" \
        "AZURE_OPENAI_KEY=${openai_key}" AZURE_OPENAI_DEPLOYMENT_GPT4=gpt-4o --output none
fi

if ((with_speech)); then
    speech="${name}-speech"
    echo "== Azure Speech ${speech}"
    if ! exists cognitiveservices account show --name "$speech" --resource-group "$group"; then
        az_do cognitiveservices account create --name "$speech" --resource-group "$group" \
            --location "$location" --kind SpeechServices --sku S0 --output none
    fi
    speech_key="$(az_get '<speech-key>' cognitiveservices account keys list --name "$speech" \
        --resource-group "$group" --query key1 --output tsv)"
    az_do webapp config appsettings set --name "$app" --resource-group "$group" \
        --settings "AZURE_SPEECH_KEY=${speech_key}" "AZURE_SPEECH_REGION=${location}" \
        --output none
fi

if ((with_redis)); then
    redis="${name}-redis"
    echo "== Azure Cache for Redis ${redis} (fan-out across instances)"
    if ! exists redis show --name "$redis" --resource-group "$group"; then
        az_do redis create --name "$redis" --resource-group "$group" --location "$location" \
            --sku Basic --vm-size c0 --minimum-tls-version 1.2 --output none
    fi
    redis_key="$(az_get '<redis-key>' redis list-keys --name "$redis" --resource-group "$group" \
        --query primaryKey --output tsv)"
    az_do webapp config appsettings set --name "$app" --resource-group "$group" \
        --settings "REDIS_URL=rediss://:${redis_key}@${redis}.redis.cache.windows.net:6380/0" \
        --output none
fi

echo "== restart with the new image"
az_do webapp restart --name "$app" --resource-group "$group"
echo "PiChat: wss://${app}.azurewebsites.net/ws  (health: https://${app}.azurewebsites.net/healthz)"
