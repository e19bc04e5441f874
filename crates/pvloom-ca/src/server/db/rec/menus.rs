//! Menus of the record types added after the first twelve (each type's `.dbd` `menu(...)`).

use super::super::value::Menu;

/// Selection modes of fanout, seq and dfanout (`fanoutSELM`, `seqSELM`, `dfanoutSELM`).
const SELECT_CHOICES: &[&str] = &["All", "Specified", "Mask"];
pub(crate) static MENU_FANOUT_SELM: Menu = Menu { name: "fanoutSELM", choices: SELECT_CHOICES };
pub(crate) static MENU_SEQ_SELM: Menu = Menu { name: "seqSELM", choices: SELECT_CHOICES };
pub(crate) static MENU_DFANOUT_SELM: Menu = Menu { name: "dfanoutSELM", choices: SELECT_CHOICES };
pub(crate) static MENU_CALCOUT_OOPT: Menu = Menu {
    name: "calcoutOOPT",
    choices: &["Every Time", "On Change", "When Zero", "When Non-zero", "Transition To Zero", "Transition To Non-zero"],
};
pub(crate) static MENU_CALCOUT_DOPT: Menu = Menu { name: "calcoutDOPT", choices: &["Use CALC", "Use OCAL"] };
pub(crate) static MENU_CALCOUT_INAV: Menu =
    Menu { name: "calcoutINAV", choices: &["Ext PV NC", "Ext PV OK", "Local PV", "Constant"] };
pub(crate) static MENU_POST: Menu = Menu { name: "menuPost", choices: &["On Change", "Always"] };
pub(crate) static MENU_AAI_POST: Menu = Menu { name: "aaiPOST", choices: &["Always", "On Change"] };
pub(crate) static MENU_AAO_POST: Menu = Menu { name: "aaoPOST", choices: &["Always", "On Change"] };
pub(crate) static MENU_SEL_SELM: Menu =
    Menu { name: "selSELM", choices: &["Specified", "High Signal", "Low Signal", "Median Signal"] };
pub(crate) static MENU_A_SUB_LFLG: Menu = Menu { name: "aSubLFLG", choices: &["IGNORE", "READ"] };
pub(crate) static MENU_A_SUB_EFLG: Menu = Menu { name: "aSubEFLG", choices: &["NEVER", "ON CHANGE", "ALWAYS"] };
pub(crate) static MENU_HISTOGRAM_CMD: Menu =
    Menu { name: "histogramCMD", choices: &["Read", "Clear", "Start", "Stop"] };
pub(crate) static MENU_COMPRESS_ALG: Menu = Menu {
    name: "compressALG",
    choices: &[
        "N to 1 Low Value",
        "N to 1 High Value",
        "N to 1 Average",
        "Average",
        "Circular Buffer",
        "N to 1 Median",
    ],
};
pub(crate) static MENU_BUFFERING_ALG: Menu = Menu { name: "bufferingALG", choices: &["FIFO Buffer", "LIFO Buffer"] };
