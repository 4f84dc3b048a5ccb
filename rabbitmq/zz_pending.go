package rabbitmq

// MetadataReject: placeholder until the rabbitmq branch lands (deleted at merge).
const MetadataReject = "rabbitmq_reject"
