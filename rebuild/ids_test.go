package rebuild

import (
	"errors"
	"os/user"
	"testing"
)

func TestIDsFromFlags(t *testing.T) {
	ids, err := IDsFromFlags([]string{"qmailq=992", "qmails=990", "qmailr = 991", "alias=999"}, []string{"qmail=995"})
	if err != nil {
		t.Fatal(err)
	}
	if ids.Users["qmailq"] != 992 || ids.Users["qmailr"] != 991 || ids.Groups["qmail"] != 995 {
		t.Errorf("got %+v", ids)
	}
	for _, bad := range []string{"qmailq", "=5", "qmailq=x", "qmailq=-1"} {
		if _, err := IDsFromFlags([]string{bad}, nil); err == nil || errors.Is(err, ErrUnknownAccount) {
			t.Errorf("%q: %v", bad, err)
		}
	}
	// Accounts this machine does not have are named in the error.
	if _, err := user.Lookup("qmailq"); err != nil {
		_, err := IDsFromFlags(nil, []string{"qmail=995"})
		if !errors.Is(err, ErrUnknownAccount) {
			t.Errorf("missing accounts: %v", err)
		}
	}
	if _, err := CheckQmail(t.TempDir(), IDs{}, Options{}); !errors.Is(err, ErrUnknownAccount) {
		t.Errorf("CheckQmail without ids: %v", err)
	}
}
