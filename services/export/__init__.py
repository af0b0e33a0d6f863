"""The export edges: stages that send final study results to hospital systems.

Each target (DICOM C-STORE, STOW-RS, HL7 v2 over MLLP, FHIR) is one module with a
pure mapping (result + PatientContext -> the target's message) and a thin sender that
classifies the peer's answer: success commits, a refusal is a permanent error (DLQ
with the peer's status), no answer is transient and retried until answered
(`ExportStage.retry_until_answered`).
"""
