{{/* Names and labels shared by the templates. */}}
{{- define "ferry.name" -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- end }}

{{- define "ferry.labels" -}}
app.kubernetes.io/part-of: ferry
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}

{{- define "ferry.serverUrl" -}}
{{- default (printf "https://%s-server.%s.svc:8443" (include "ferry.name" .) .Release.Namespace) .Values.server.publicUrl -}}
{{- end }}
