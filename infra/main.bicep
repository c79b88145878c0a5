// PiChat on Azure App Service: a Linux plan, the web app running the container image from
// Azure Container Registry (pulled with a managed identity, no registry password), WebSockets,
// Always On, the readiness check, HTTPS only; optionally Azure SQL, Azure OpenAI, Azure Speech
// and Azure Cache for Redis, each wired into the app settings.
//
//   az deployment group create --resource-group RG --template-file infra/main.bicep \
//     --parameters @infra/main.parameters.json --parameters apiToken=... metricsToken=...
//
// The app settings start from infra/appsettings.json (the same file infra/deploy.sh applies),
// then the `appSettings` parameter, then what the optional services need.

@description('Base name: the app is NAME.azurewebsites.net; other resources are named after it.')
@minLength(3)
@maxLength(41)
param name string

param location string = resourceGroup().location

@description('App Service plan SKU: B1 for a trial; P1v3 or above for production.')
param sku string = 'B1'

@description('Image tag in the registry (pichat-backend:TAG), as pushed by az acr build.')
param imageTag string = 'latest'

@description('Settings over those of appsettings.json, e.g. {"LOG_LEVEL": "DEBUG"}.')
param appSettings object = {}

@secure()
@description('The default user\'s token (API_TOKEN); at least 16 characters.')
@minLength(16)
param apiToken string

@secure()
@description('The bearer token GET /metrics needs (METRICS_TOKEN).')
param metricsToken string

@description('Instances of the app (App Service scale-out). Above 1 needs deployRedis (REDIS_URL).')
@minValue(1)
@maxValue(30)
param instanceCount int = 1

param deploySql bool = false
param deployOpenAI bool = false
param deploySpeech bool = false
param deployRedis bool = false

@secure()
@description('Administrator password of the Azure SQL server, when deploySql.')
param sqlAdminPassword string = ''

param openAIModel string = 'gpt-4o'
param openAIModelVersion string = '2024-08-06'

var registryName = replace('${name}acr', '-', '')
var image = '${registry.properties.loginServer}/pichat-backend:${imageTag}'
var acrPullRole = subscriptionResourceId(
  'Microsoft.Authorization/roleDefinitions',
  '7f951dda-4ed3-4680-a7ca-43fe172d538d'
)
var sqlServerName = '${name}-sql'

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: '${name}-identity'
  location: location
}

resource registry 'Microsoft.ContainerRegistry/registries@2023-07-01' = {
  name: registryName
  location: location
  sku: {
    name: 'Basic'
  }
  properties: {
    adminUserEnabled: false
  }
}

resource acrPull 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(registry.id, identity.id, acrPullRole)
  scope: registry
  properties: {
    roleDefinitionId: acrPullRole
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource plan 'Microsoft.Web/serverfarms@2023-12-01' = {
  name: '${name}-plan'
  location: location
  kind: 'linux'
  sku: {
    name: sku
    capacity: instanceCount // the workers each run one copy of the container
  }
  properties: {
    reserved: true // Linux
  }
}

resource sqlServer 'Microsoft.Sql/servers@2023-08-01-preview' = if (deploySql) {
  name: sqlServerName
  location: location
  properties: {
    administratorLogin: 'pichatadmin'
    administratorLoginPassword: sqlAdminPassword
    minimalTlsVersion: '1.2'
  }
}

resource sqlDatabase 'Microsoft.Sql/servers/databases@2023-08-01-preview' = if (deploySql) {
  parent: sqlServer
  name: 'pichat'
  location: location
  sku: {
    name: 'GP_S_Gen5_1'
    tier: 'GeneralPurpose'
  }
  properties: {
    autoPauseDelay: 60
  }
}

resource sqlAzureServices 'Microsoft.Sql/servers/firewallRules@2023-08-01-preview' = if (deploySql) {
  parent: sqlServer
  name: 'AllowAzureServices'
  properties: {
    startIpAddress: '0.0.0.0'
    endIpAddress: '0.0.0.0'
  }
}

resource openAI 'Microsoft.CognitiveServices/accounts@2023-05-01' = if (deployOpenAI) {
  name: '${name}-openai'
  location: location
  kind: 'OpenAI'
  sku: {
    name: 'S0'
  }
  properties: {
    customSubDomainName: '${name}-openai'
  }
}

resource openAIDeployment 'Microsoft.CognitiveServices/accounts/deployments@2023-05-01' = if (deployOpenAI) {
  parent: openAI
  name: openAIModel
  sku: {
    name: 'Standard'
    capacity: 10
  }
  properties: {
    model: {
      format: 'OpenAI'
      name: openAIModel
      version: openAIModelVersion
    }
  }
}

resource speech 'Microsoft.CognitiveServices/accounts@2023-05-01' = if (deploySpeech) {
  name: '${name}-speech'
  location: location
  kind: 'SpeechServices'
  sku: {
    name: 'S0'
  }
  properties: {}
}

resource redis 'Microsoft.Cache/redis@2023-08-01' = if (deployRedis) {
  name: '${name}-redis'
  location: location
  properties: {
    sku: {
      name: 'Basic'
      family: 'C'
      capacity: 0
    }
    enableNonSslPort: false
    minimumTlsVersion: '1.2'
  }
}

var sqlSettings = deploySql
  ? {
      DB_HOST: '${sqlServerName}${environment().suffixes.sqlServerHostname}'
      DB_NAME: 'pichat'
      DB_USER: 'pichatadmin'
      DB_PASSWORD: sqlAdminPassword
    }
  : {}
var openAISettings = deployOpenAI
  ? {
      AZURE_OPENAI_ENDPOINT: 'https://${name}-openai.openai.azure.com/'
      AZURE_OPENAI_KEY: openAI.listKeys().key1
      AZURE_OPENAI_DEPLOYMENT_GPT4: openAIModel
    }
  : {}
var speechSettings = deploySpeech
  ? {
      AZURE_SPEECH_KEY: speech.listKeys().key1
      AZURE_SPEECH_REGION: location
    }
  : {}
var redisSettings = deployRedis
  ? {
      REDIS_URL: 'rediss://:${redis.listKeys().primaryKey}@${name}-redis.redis.cache.windows.net:6380/0'
    }
  : {}
var settings = union(
  loadJsonContent('appsettings.json'),
  appSettings,
  {
    API_TOKEN: apiToken
    METRICS_TOKEN: metricsToken
  },
  sqlSettings,
  openAISettings,
  speechSettings,
  redisSettings
)

resource app 'Microsoft.Web/sites@2023-12-01' = {
  name: name
  location: location
  kind: 'app,linux,container'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identity.id}': {}
    }
  }
  dependsOn: [
    acrPull // the first pull needs the role
  ]
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    siteConfig: {
      linuxFxVersion: 'DOCKER|${image}'
      acrUseManagedIdentityCreds: true
      acrUserManagedIdentityID: identity.properties.clientId
      webSocketsEnabled: true
      alwaysOn: true
      healthCheckPath: '/readyz'
      http20Enabled: true
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      appSettings: [for item in items(settings): {
        name: item.key
        value: item.value
      }]
    }
  }
}

output url string = 'https://${app.properties.defaultHostName}'
output websocket string = 'wss://${app.properties.defaultHostName}/ws'
output registry string = registry.properties.loginServer
