{{/* Where the receiver's certificate is mounted (a directory, never a subPath: a renewal must reach the pod). */}}
{{- define "tryon-operator.webhookTLSDir" -}}
/etc/tryon/webhook-tls
{{- end }}

{{/* The kubernetes.io/tls Secret the receiver serves: webhook.tls.secretName, else the one the
chart's cert-manager Certificate writes; empty when neither is asked for. */}}
{{- define "tryon-operator.webhookTLSSecret" -}}
{{- $tls := .Values.webhook.tls }}
{{- if $tls.secretName }}
{{- $tls.secretName }}
{{- else if $tls.certManager.enabled }}
{{- printf "%s-webhook-tls" (include "tryon-operator.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/* Refuses a receiver that would not start, or would serve plain http without being asked to. */}}
{{- define "tryon-operator.webhookChecks" -}}
{{- if .Values.webhook.enabled }}
{{- if not .Values.webhook.secret.name }}
{{- fail "webhook.enabled needs webhook.secret.name: an unsigned webhook receiver is not served" }}
{{- end }}
{{- if and .Values.webhook.tls.certManager.enabled (not .Values.webhook.tls.certManager.issuerRef.name) }}
{{- fail "webhook.tls.certManager.enabled needs webhook.tls.certManager.issuerRef.name: the cert-manager Issuer or ClusterIssuer that signs the receiver's certificate" }}
{{- end }}
{{- if and (not (include "tryon-operator.webhookTLSSecret" .)) (not .Values.webhook.allowHttp) }}
{{- fail "webhook.enabled serves https (MLflow sends webhooks over https only): set webhook.tls.secretName to a kubernetes.io/tls Secret, or webhook.tls.certManager.enabled=true with webhook.tls.certManager.issuerRef.name, or webhook.allowHttp=true behind your own TLS proxy" }}
{{- end }}
{{- end }}
{{- end }}
