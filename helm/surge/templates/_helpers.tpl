{{- define "surge.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "surge.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "surge.selectorLabels" -}}
app.kubernetes.io/name: {{ include "surge.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "surge.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "surge.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "surge.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "surge.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "surge.controllers" -}}
{{- $c := list -}}
{{- if .Values.controllers.autoscaler.enabled -}}{{- $c = append $c "autoscaler" -}}{{- end -}}
{{- if .Values.controllers.provisioner.enabled -}}{{- $c = append $c "provisioner" -}}{{- end -}}
{{- join "," $c -}}
{{- end -}}

{{- define "surge.interceptorSelectorLabels" -}}
app.kubernetes.io/name: {{ include "surge.name" . }}-interceptor
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
