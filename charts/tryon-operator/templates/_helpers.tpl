{{/* Chart name, truncated to the 63 characters a label value allows. */}}
{{- define "tryon-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: the release name, plus the chart name unless the release already holds it. */}}
{{- define "tryon-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "tryon-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tryon-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "tryon-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "tryon-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "tryon-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "tryon-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "tryon-operator.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
Namespaces the operator manages, as a list. Namespaced scope without a list means the release
namespace; cluster scope without a list means every namespace (an empty list).
*/}}
{{- define "tryon-operator.watchNamespaces" -}}
{{- $namespaces := .Values.watch.namespaces }}
{{- if and (eq .Values.rbac.scope "namespaced") (not $namespaces) }}
{{- $namespaces = list .Release.Namespace }}
{{- end }}
{{- toJson (uniq $namespaces) }}
{{- end }}

{{/* Rules for the TryOnModels and the children the operator owns, in one namespace or all. */}}
{{- define "tryon-operator.workloadRules" -}}
- apiGroups: ["tryon.dev"]
  resources: ["tryonmodels"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["tryon.dev"]
  resources: ["tryonmodels/status"]
  verbs: ["get", "patch"]
# Children carry ownerReferences with blockOwnerDeletion; clusters running the
# OwnerReferencesPermissionEnforcement admission plugin require update on the owner's finalizers.
- apiGroups: ["tryon.dev"]
  resources: ["tryonmodels/finalizers"]
  verbs: ["update"]
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "create", "update", "patch", "delete"]
- apiGroups: ["apps"]
  resources: ["deployments/scale"]
  verbs: ["patch"]
- apiGroups: [""]
  resources: ["services"]
  verbs: ["get", "list", "watch", "create", "update", "patch", "delete"]
- apiGroups: ["autoscaling"]
  resources: ["horizontalpodautoscalers"]
  verbs: ["get", "list", "watch", "create", "update", "patch", "delete"]
# KEDA's ScaledObject for spec.autoscaling.metric inFlight / queueDepth (not watched: applied, deleted)
- apiGroups: ["keda.sh"]
  resources: ["scaledobjects"]
  verbs: ["get", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["get", "create", "patch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}

{{/* Leader election's values make sense together: one replica without it, lease > renew > retry. */}}
{{- define "tryon-operator.leaderElectionChecks" -}}
{{- $le := .Values.leaderElection }}
{{- if and (not $le.enabled) (gt (int .Values.replicas) 1) }}
{{- fail "replicas > 1 needs leaderElection.enabled: two operators without a leader would both write" }}
{{- end }}
{{- if $le.enabled }}
{{- if not (and (gt (float64 $le.leaseSeconds) (float64 $le.renewDeadlineSeconds)) (gt (float64 $le.renewDeadlineSeconds) (float64 $le.retryPeriodSeconds))) }}
{{- fail "leaderElection needs leaseSeconds > renewDeadlineSeconds > retryPeriodSeconds" }}
{{- end }}
{{- end }}
{{- end }}
