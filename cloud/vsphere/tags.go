package vsphere

import (
	"context"
	"encoding/json"
	"maps"
	"slices"
	"strings"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

// Keys this provider writes into a VM's configuration (config.extraConfig)
// when it clones one. They are part of the clone's config spec, so they exist
// from the moment the VM does.
const (
	// keyTags holds the server's tags as a JSON object.
	keyTags = "stratusworks.tags"
	// keyImage and keySize record the LaunchRequest's image and size names.
	keyImage = "stratusworks.image"
	keySize  = "stratusworks.size"
	// keyLaunch holds a random id of the launch, to recognise the VM a clone
	// task created after vCenter has forgotten the task.
	keyLaunch = "stratusworks.launch"

	// CustomAttributePrefix prefixes the names of the vSphere custom
	// attributes that mirror tags: tag "owner" is attribute
	// "stratusworks.owner". Attributes with this prefix set by hand in the
	// vSphere client are read as tags too.
	CustomAttributePrefix = "stratusworks."
)

// extraConfig returns the string value of key in the VM's extraConfig.
func extraConfig(vm mo.VirtualMachine, key string) string {
	if vm.Config == nil {
		return ""
	}
	for _, o := range vm.Config.ExtraConfig {
		if ov := o.GetOptionValue(); ov != nil && ov.Key == key {
			s, _ := ov.Value.(string)
			return s
		}
	}
	return ""
}

func encodeTags(tags map[string]string) string {
	if tags == nil {
		tags = map[string]string{}
	}
	b, _ := json.Marshal(tags) // map[string]string always marshals; keys come out sorted
	return string(b)
}

// vmTags merges a VM's tags: those in extraConfig (written at launch) and
// custom attributes named CustomAttributePrefix+key (mirrored after launch,
// or set by hand), which win when both hold a key.
func vmTags(vm mo.VirtualMachine, fieldNames map[int32]string) map[string]string {
	tags := map[string]string{}
	if s := extraConfig(vm, keyTags); s != "" {
		_ = json.Unmarshal([]byte(s), &tags) // malformed (hand-edited) JSON: no tags from it
	}
	for _, cv := range vm.CustomValue {
		sv, ok := cv.(*types.CustomFieldStringValue)
		if !ok {
			continue
		}
		if name, ok := strings.CutPrefix(fieldNames[sv.Key], CustomAttributePrefix); ok && name != "" {
			tags[name] = sv.Value
		}
	}
	if len(tags) == 0 {
		return nil
	}
	return tags
}

// customFieldNames returns the names of the custom fields the VMs use,
// refreshing the cached definitions when one is unknown.
func (p *Provider) customFieldNames(ctx context.Context, vms []mo.VirtualMachine) (map[int32]string, error) {
	p.fieldsMu.Lock()
	defer p.fieldsMu.Unlock()
	for _, vm := range vms {
		for _, cv := range vm.CustomValue {
			if _, ok := p.fields[cv.GetCustomFieldValue().Key]; !ok {
				if err := p.loadFieldsLocked(ctx); err != nil {
					return nil, err
				}
				return maps.Clone(p.fields), nil
			}
		}
	}
	return maps.Clone(p.fields), nil
}

func (p *Provider) loadFieldsLocked(ctx context.Context) error {
	fields := map[int32]string{}
	keys := map[string]int32{}
	if p.client.ServiceContent.CustomFieldsManager != nil {
		defs, err := object.NewCustomFieldsManager(p.client).Field(ctx)
		if err != nil {
			return err
		}
		for _, d := range defs {
			if d.ManagedObjectType != "" && d.ManagedObjectType != "VirtualMachine" {
				continue
			}
			fields[d.Key] = d.Name
			keys[d.Name] = d.Key
		}
	}
	p.fields, p.keys = fields, keys
	return nil
}

// customFieldKey returns the key of the VirtualMachine custom field name,
// defining the field if it does not exist.
func (p *Provider) customFieldKey(ctx context.Context, name string) (int32, error) {
	p.fieldsMu.Lock()
	defer p.fieldsMu.Unlock()
	if k, ok := p.keys[name]; ok {
		return k, nil
	}
	if err := p.loadFieldsLocked(ctx); err != nil {
		return 0, err
	}
	if k, ok := p.keys[name]; ok {
		return k, nil
	}
	def, err := object.NewCustomFieldsManager(p.client).Add(ctx, name, "VirtualMachine", nil, nil)
	if isFaultType(err, &types.DuplicateName{}) {
		// Another worker defined it meanwhile.
		if err := p.loadFieldsLocked(ctx); err != nil {
			return 0, err
		}
		if k, ok := p.keys[name]; ok {
			return k, nil
		}
	}
	if err != nil {
		return 0, err
	}
	p.fields[def.Key] = def.Name
	p.keys[def.Name] = def.Key
	return def.Key, nil
}

// mirrorTags sets a custom attribute per tag on the VM, so tags show in the
// vSphere client and survive a reconfiguration that drops extraConfig keys.
func (p *Provider) mirrorTags(ctx context.Context, vm types.ManagedObjectReference, tags map[string]string) error {
	if len(tags) == 0 || p.client.ServiceContent.CustomFieldsManager == nil {
		return nil
	}
	m := object.NewCustomFieldsManager(p.client)
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		key, err := p.customFieldKey(ctx, CustomAttributePrefix+k)
		if err != nil {
			return err
		}
		if err := m.Set(ctx, vm, key, tags[k]); err != nil {
			return err
		}
	}
	return nil
}
