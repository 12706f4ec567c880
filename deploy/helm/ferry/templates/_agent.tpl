{{- /* An agent StatefulSet. Context: dict with root, name, secret, concurrency. */}}
{{- define "ferry.agent" -}}
{{- $root := .root }}
{{- $name := printf "%s-agent-%s" (include "ferry.name" $root) .name }}
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: {{ $name }}
  labels:
    {{- include "ferry.labels" $root | nindent 4 }}
    app.kubernetes.io/component: agent
    ferry.dev/agent: {{ .name }}
spec:
  # One replica: a join token registers one agent once.
  replicas: 1
  serviceName: {{ $name }}
  selector:
    matchLabels:
      app.kubernetes.io/instance: {{ $root.Release.Name }}
      app.kubernetes.io/component: agent
      ferry.dev/agent: {{ .name }}
  template:
    metadata:
      labels:
        {{- include "ferry.labels" $root | nindent 8 }}
        app.kubernetes.io/component: agent
        ferry.dev/agent: {{ .name }}
    spec:
      automountServiceAccountToken: false
      # SIGTERM drains: running tasks finish first.
      terminationGracePeriodSeconds: 900
      containers:
        - name: agent
          image: {{ $root.Values.image.agent | quote }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          args: ["--name", {{ .name | quote }}, "--concurrency", {{ .concurrency | toString | quote }}]
          env:
            - name: FERRY_JOIN_TOKEN
              valueFrom:
                secretKeyRef:
                  name: {{ .secret }}
                  key: token
          securityContext:
            {{- if $root.Values.agentDefaults.privileged }}
            # For the bubblewrap sandbox (docs/deploy.md).
            privileged: true
            {{- else }}
            allowPrivilegeEscalation: false
            capabilities:
              drop: ["ALL"]
            {{- end }}
          resources:
            {{- toYaml $root.Values.agentDefaults.resources | nindent 12 }}
          volumeMounts:
            - name: data
              mountPath: /var/lib/ferry-agent
  volumeClaimTemplates:
    - metadata:
        name: data
      spec:
        accessModes: ["ReadWriteOnce"]
        {{- with $root.Values.agentDefaults.storage.storageClassName }}
        storageClassName: {{ . }}
        {{- end }}
        resources:
          requests:
            storage: {{ $root.Values.agentDefaults.storage.size }}
{{- end }}
