-- Forward each stable study's new images from Orthanc to radstream (docs/integration.md).
--
-- Orthanc calls OnStableStudy once a study has received no new instance for StableAge
-- seconds. This script then sends the study's images that it has not sent before to the
-- peer named in the "RadstreamRouting" section of orthanc.json:
--   "Target": the DicomModalities entry (C-STORE) or DicomWeb.Servers entry (STOW-RS),
--   "Via":    "dicom" (C-STORE, the default) or "dicomweb" (STOW-RS),
--   "SkipModalities": series not to forward (default SR, PR, KO, DOC: radstream's own
--             results, stored back into the same study, must not come back to it).
-- Each instance sent is marked with the metadata "RadstreamForwarded" (declared in
-- "UserMetadata"), so a study that becomes stable again (a late image, results stored
-- back) sends only what is new. The send is synchronous and radstream acknowledges an
-- instance only once it is stored and published; when the send fails, the error is logged
-- and nothing is marked, so those instances go again at the study's next stable event, or
-- by hand: POST /modalities/radstream/store with the study's Orthanc ID.

local settings = GetOrthancConfiguration()['RadstreamRouting'] or {}
local TARGET = settings['Target'] or 'radstream'
local VIA = settings['Via'] or 'dicom'
local MARK = 'RadstreamForwarded'
local SKIP = {}
for _, modality in ipairs(settings['SkipModalities'] or { 'SR', 'PR', 'KO', 'DOC' }) do
  SKIP[modality] = true
end

local function IsMarked(instanceId)
  for _, name in ipairs(ParseJson(RestApiGet('/instances/' .. instanceId .. '/metadata'))) do
    if name == MARK then
      return true
    end
  end
  return false
end

-- The Orthanc IDs of the study's instances to send: not yet sent, not in a skipped series.
local function PendingInstances(studyId)
  local pending = {}
  for _, series in ipairs(ParseJson(RestApiGet('/studies/' .. studyId .. '/series'))) do
    if not SKIP[series['MainDicomTags']['Modality'] or ''] then
      for _, instanceId in ipairs(series['Instances']) do
        if not IsMarked(instanceId) then
          table.insert(pending, instanceId)
        end
      end
    end
  end
  return pending
end

local function SendPath()
  if VIA == 'dicomweb' then
    return '/dicom-web/servers/' .. TARGET .. '/stow'
  end
  return '/modalities/' .. TARGET .. '/store'
end

function OnStableStudy(studyId, tags, metadata)
  local study = tags['StudyInstanceUID'] or studyId
  local pending = PendingInstances(studyId)
  if #pending == 0 then
    print('radstream: study ' .. study .. ': nothing new to forward')
    return
  end
  local body = DumpJson({ Resources = pending, Synchronous = true }, true)
  local ok, err = pcall(RestApiPost, SendPath(), body)
  if not ok then
    print('radstream: study ' .. study .. ': forwarding ' .. #pending .. ' instance(s) to ' .. TARGET ..
          ' by ' .. VIA .. ' failed: ' .. tostring(err))
    return
  end
  for _, instanceId in ipairs(pending) do
    RestApiPut('/instances/' .. instanceId .. '/metadata/' .. MARK, VIA .. ':' .. TARGET)
  end
  print('radstream: study ' .. study .. ': forwarded ' .. #pending .. ' instance(s) to ' .. TARGET .. ' by ' .. VIA)
end
